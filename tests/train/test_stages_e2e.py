"""`pretrain train` on a staged config (bulk -> long-context -> anneal) with the real model, loader and eval."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

STAGED = """
preset = "tiny"
name = "staged"
[data]
tokens = "{tokens}"
[tokenizer]
path = "{tokenizer}"
[model]
dim = 32
n_layers = 2
n_heads = 2
n_kv_heads = 1
max_seq_len = 32
[train]
seq_len = 32
micro_batch = 4
max_steps = 16
warmup_steps = 2
log_interval = 2
peak_flops = 1e11
[train.averaging]
ema_decay = 0.9
last_n = 2
[[train.stages]]
name = "bulk"
fraction = 0.5
[[train.stages]]
name = "long"
kind = "long_context"
steps = 4
seq_len = 128
rope_scaling = "yarn"
[train.stages.gate]
max_extensions = 1
extra_steps = 2
[[train.stages]]
name = "anneal"
kind = "anneal"
mixture = {{ code = 1.0 }}
[eval]
batch_size = 8
max_docs_per_domain = 4
max_tokens_per_domain = 512
"""


def test_pretrain_train_runs_a_staged_config(tiny_data, tmp_path):
    from pretrain.cli import app
    from pretrain.model.io import load_model

    cfg_file = tmp_path / "staged.toml"
    cfg_file.write_text(STAGED.format(tokens=tiny_data.tokens, tokenizer=tiny_data.tokenizer))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(cfg_file), "--run-dir", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    starts = [r for r in rows if r.get("event") == "stage_start"]
    assert [r["stage"] for r in starts] == ["bulk", "long", "anneal"]
    train_rows = [r for r in rows if r["type"] == "train"]
    for key in ("step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"):
        assert all(key in r for r in train_rows)
    assert {r["seq_len"] for r in train_rows if r["stage"] == "long"} == {128}
    # The gate (needle at 64 tokens cannot pass on this model) extended the stage once, then gave up.
    events = [r["event"] for r in rows if r["type"] == "event"]
    assert "gate_extend" in events and "gate_giveup" in events
    assert max(r["step"] for r in train_rows) == 18  # 16 planned + 2 gate steps
    # The anneal trained on its own mixture and took the LR to (almost) zero.
    anneal = [r for r in train_rows if r["stage"] == "anneal"]
    assert all(k not in r for r in anneal for k in ("loss/prose",))
    assert anneal[-1]["lr"] < 0.2 * max(r["lr"] for r in train_rows)
    # Candidates for the final model were evaluated, and the final checkpoint is a loadable model.
    tags = {r.get("model") for r in rows if r["type"] == "eval"}
    assert {"raw", "ema", "last_n"} <= tags
    meta = json.loads((run / "checkpoints" / "final" / "meta.json").read_text())
    assert meta["selected"] in ("raw", "ema", "last_n") and meta["step"] == 18
    model = load_model(run / "checkpoints" / "final")
    assert model.cfg.rope_scaling.type == "yarn" and model.cfg.max_seq_len == 128
    out = model(torch.zeros(1, 128, dtype=torch.long))
    assert torch.isfinite(out.logits).all()
    # Resuming a finished run does nothing and returns the final model.
    again = CliRunner().invoke(app, ["train", str(cfg_file), "--run-dir", str(run), "--no-progress"])
    assert again.exit_code == 0 and "final model" in again.output


def test_bad_inputs_fail_with_one_line_naming_the_culprit(tiny_data, tmp_path):
    import pytest
    from trainkit import make_trainer, toy_cfg

    from conftest import tiny_cfg
    from pretrain.configlib import ConfigError
    from pretrain.train import train

    with pytest.raises(FileNotFoundError, match="no train/ split under token directory"):
        train(tiny_cfg(tiny_data, f'data.tokens="{tmp_path / "nowhere"}"'), tmp_path / "r1", progress=False)
    with pytest.raises(FileNotFoundError, match="tokenizer not found"):
        train(tiny_cfg(tiny_data, f'tokenizer.path="{tmp_path / "tok.json"}"'), tmp_path / "r2", progress=False)
    with pytest.raises(ConfigError, match="train.global_batch"):
        make_trainer(toy_cfg("train.micro_batch=4", "train.global_batch=6"), tmp_path / "r3")
    result = CliRunner().invoke(__import__("pretrain.cli", fromlist=["app"]).app,
                                ["train", "tiny", "train.lr=-1", "--run-dir", str(tmp_path / "r4")])
    assert result.exit_code != 0 and "train.lr" in str(result.exception)


def test_init_from_continues_from_given_weights(tmp_path):
    """train.init_from starts from a checkpoint's weights (e.g. one made by `pretrain import hf`)."""
    import pytest as _pytest
    from safetensors.torch import load_file

    from pretrain.config import resolve
    from pretrain.model import Transformer
    from pretrain.model.io import save_model
    from pretrain.train.api import init_weights

    cfg = resolve("tiny", ["model.vocab_size=512"])
    torch_seeded = Transformer(cfg.model)
    save_model(torch_seeded, tmp_path / "src")
    fresh = Transformer(cfg.model)
    init_weights(fresh, tmp_path / "src")
    saved = load_file(str(tmp_path / "src" / "model.safetensors"))
    for k, v in fresh.state_dict().items():
        if k in saved:
            assert (v == saved[k]).all(), k
    other = resolve("tiny", ["model.vocab_size=512", "model.dim=32"])
    with _pytest.raises(ValueError, match="train.init_from"):
        init_weights(Transformer(other.model), tmp_path / "src")
