"""The quickstart end to end on a slice of the built-in corpus: every stage runs for real."""

from __future__ import annotations

import json

import pytest

from pretrain.config import resolve
from pretrain.quickstart import run_quickstart


@pytest.mark.slow
def test_tiny_quickstart_end_to_end(tmp_path):
    cfg = resolve("tiny", ["data.builtin_domains=['docs', 'literature']", "data.builtin_max_docs=80",
                           "data.val_fraction=0.2", "train.max_steps=40", "data.curate.workers=1"])
    result = run_quickstart(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    # Every stage left its artifact.
    for path in ("corpus/docs.jsonl.zst", "curated/stats.json", "tokenizer/tokenizer.json", "tokens/train/docs",
                 "tokens/val/literature", "checkpoints/final/model.safetensors", "metrics.jsonl",
                 "eval/heldout.json", "eval/samples.json", "report/index.html", "config.toml"):
        assert (run / path).exists(), path
    stats = json.loads((run / "curated/stats.json").read_text())
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"] == 160
    heldout = result.heldout
    for domain in ("docs", "literature"):
        model_bpb = heldout["domains"][domain]["bits_per_byte"]
        assert 0 < model_bpb < 8
        assert heldout["unigram"][domain]["bits_per_byte"] > 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["type"] == "train"]
    assert train_rows[-1]["step"] == 40
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]  # it learned something
    html = (run / "report/index.html").read_text()
    assert "Loss curves" in html and "data:image/png;base64" in html
    # Lineage: the manifest chain holds, and the last step's documents lead back to the built-in corpus.
    from pretrain.lineage.trace import trace_step
    from pretrain.lineage.verify import verify

    broken, links = verify(run)
    assert broken == [] and [m["stage"] for _, m in links] == ["curate", "tokenizer", "tokenize", "train", "eval"]
    doc = trace_step(run, 40)["documents"][0]
    assert doc["origin"]["raw"]["path"].startswith(str((run / "corpus").resolve())) and doc["origin"]["raw"]["line"] >= 1
    assert "Data provenance" in html
    # A second call finds every step done and redoes nothing.
    again = run_quickstart(cfg, run, progress=False)
    assert again.timings == {}


def test_builtin_slice_is_a_prefix(tmp_path):
    from pretrain.data.builtin import build_builtin_corpus
    from pretrain.data.record import read_jsonl

    stats = build_builtin_corpus(tmp_path, domains=("docs",), max_docs=7)
    assert stats["docs"]["documents"] == 7
    assert len(list(read_jsonl(tmp_path / "docs.jsonl.zst"))) == 7


@pytest.mark.slow
def test_quickstart_with_parquet_curated_output_trains_its_tokenizer_and_runs_through(tmp_path):
    """The tokenizer step reads the curated output through the same reader as tokenize (it used to read
    JSONL only and stopped with "tokenizer training got no documents")."""
    from pretrain.data.record import read_dir

    cfg = resolve("tiny", ["data.builtin_domains=['docs']", "data.builtin_max_docs=60", "data.val_fraction=0.2",
                           "train.max_steps=4", "data.curate.workers=1", 'data.curate.output_format="parquet"'])
    run_quickstart(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    curated = sorted(p.name for p in (run / "curated" / "data").rglob("*") if p.is_file())
    assert curated and all(name.endswith(".parquet") for name in curated)
    kept = json.loads((run / "curated/stats.json").read_text())["kept"]
    assert len(list(read_dir(run / "curated" / "data"))) == kept > 0
    assert (run / "tokenizer/tokenizer.json").is_file() and (run / "checkpoints/final/model.safetensors").is_file()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert steps[-1] == 4
