"""`pretrain export hf` writes a model card (README.md with YAML metadata) naming the data and the
scores, and transformers still loads the folder."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import tiny_cfg
from pretrain.train import train

pytest.importorskip("transformers")
pytest.importorskip("lm_eval")
datasets = pytest.importorskip("datasets")


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_exported_card_names_data_and_scores_and_loads_in_transformers(tiny_data, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM
    from typer.testing import CliRunner

    from pretrain.cli import app
    from pretrain.data.curate import curate
    from pretrain.data.curate.config import CurateConfig

    run = tmp_path / "run"
    source = tmp_path / "saved"
    words = "a model reads long documents about data and training with care every single day".split()
    datasets.Dataset.from_dict({"text": [" ".join(words[(i + j) % len(words)] for j in range(60)) + f" {i}."
                                         for i in range(12)]}).save_to_disk(str(source))
    funnel = curate([source], run / "curated", CurateConfig(workers=1), workers=1, progress=False)
    train(tiny_cfg(tiny_data, "train.max_steps=4", "eval.interval=2", 'eval.tasks=["pretrain_offline_mc"]',
                   "eval.task_limit=4"), run, progress=False)
    res = CliRunner().invoke(app, ["export", "hf", str(run), "--out", str(tmp_path / "hf")])
    assert res.exit_code == 0, res.output

    card = (tmp_path / "hf" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r["type"] == "eval" and (not r.get("model") or r.get("model") == "final")][-1]
    results = {(r["dataset"]["name"], r["metrics"][0]["type"]): r["metrics"][0]["value"]
               for r in meta["model-index"][0]["results"]}
    assert results[("pretrain_offline_mc", "acc")] == pytest.approx(last["task/pretrain_offline_mc/acc"])
    assert results[("held-out split", "val_loss")] == pytest.approx(last["val_loss"], rel=1e-5)
    assert f"{funnel['documents_in']:,} documents in" in card and str(source) in card  # the data's funnel, source
    tokens = json.loads((tiny_data.tokens / "stats.json").read_text())
    for domain, v in tokens["splits"]["train"].items():
        assert f"| {domain} | train | {v['documents']:,} | {v['tokens']:,} |" in card

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))
    with torch.no_grad():
        assert model(torch.tensor([[1, 2, 3]])).logits.shape[-1] == model.config.vocab_size
