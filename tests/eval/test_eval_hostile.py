"""`pretrain eval` at the edges (issue 32): a run without checkpoints/final is evaluated on its latest
step checkpoint, and says so in one line naming it; an output folder that cannot be written stops the
command in one line before the model is loaded."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from pretrain.data.record import Document, write_jsonl
from pretrain.model import ModelConfig, Transformer
from pretrain.model.io import save_model
from pretrain.tokenizer.config import TokenizerConfig

WORDS = "the river runs under the old bridge and past the mill towards the sea".split()


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    """A run directory whose training stopped before checkpoints/final: only step_00000003."""
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer.train import train_tokenizer

    root = tmp_path_factory.mktemp("run")
    g = torch.Generator().manual_seed(0)
    docs = [Document(" ".join(WORDS[j] for j in torch.randint(0, len(WORDS), (30,), generator=g).tolist()) + f" {i}.",
                     source=f"prose:{i}", domain="prose") for i in range(24)]
    write_jsonl(root / "curated" / "docs.jsonl", docs)
    tok = train_tokenizer(docs, TokenizerConfig(vocab_size=300, sample_bytes_per_domain=50_000), root / "tokenizer")
    tokenize_corpus(root / "curated" / "docs.jsonl", tok, root / "tokens", val_fraction=0.25, workers=1)
    model = Transformer(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=1, n_heads=2, max_seq_len=64,
                                    multiple_of=16))
    ckpt = root / "checkpoints" / "step_00000003"
    save_model(model, ckpt)
    shutil.copy(root / "tokenizer" / "tokenizer.json", ckpt / "tokenizer.json")
    return root


def test_eval_names_the_step_checkpoint_it_falls_back_to(step_run, cli):
    rc, out, err = cli("eval", step_run, "--device", "cpu", "seq_len=32", "sample_tokens=2", "max_docs_per_domain=2")
    assert rc == 0, err
    ckpt = step_run / "checkpoints" / "step_00000003"
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {step_run} has no checkpoints/final; using the latest step checkpoint {ckpt}"]
    assert json.loads((step_run / "eval" / "heldout.json").read_text())["checkpoint"] == str(ckpt)


def test_eval_to_a_readonly_folder_is_one_line(step_run, cli, readonly_dir):
    rc, out, err = cli("eval", step_run, "--out", readonly_dir / "eval", "--device", "cpu")
    assert rc == 2 and out == ""
    assert err.splitlines()[-1] == f"error: --out {readonly_dir / 'eval'} is not writable: read-only file system"
    assert "Traceback" not in err and not any(line.startswith("held-out") for line in err.splitlines())
    rc, _, err = cli("audit", "memorization", step_run, "--out", readonly_dir / "audit")
    assert rc == 2 and err.splitlines()[-1].startswith(f"error: --out {readonly_dir / 'audit'} is not writable")
