import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from pretrain.cli import app
from pretrain.data.record import Document, write_jsonl
from pretrain.eval.config import EvalConfig, MemorizationConfig, NeedleConfig
from pretrain.eval.run import run_eval, with_flags
from pretrain.model import ModelConfig, Transformer
from pretrain.model.io import save_model
from pretrain.tokenizer.config import TokenizerConfig

WORDS = {"prose": "the river runs under the old bridge and past the mill towards the sea".split(),
         "code": "def return import for in if else while print self value index".split()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer.train import train_tokenizer

    root = tmp_path_factory.mktemp("run")
    g = torch.Generator().manual_seed(0)
    docs = []
    for domain, words in WORDS.items():
        for i in range(30):
            n = 20 + int(torch.randint(0, 60, (1,), generator=g))
            idx = torch.randint(0, len(words), (n,), generator=g).tolist()
            docs.append(Document(" ".join(words[j] for j in idx) + f" {i}.", source=f"{domain}:{i}", domain=domain))
    write_jsonl(root / "curated" / "docs.jsonl", docs)
    tok = train_tokenizer(docs, TokenizerConfig(vocab_size=320, sample_bytes_per_domain=100_000), root / "tokenizer")
    tokenize_corpus(root / "curated" / "docs.jsonl", tok, root / "tokens", val_fraction=0.25, workers=1)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=1, n_heads=2, max_seq_len=96,
                                    multiple_of=16))
    ckpt = root / "checkpoints" / "final"
    save_model(model, ckpt)
    shutil.copy(root / "tokenizer" / "tokenizer.json", ckpt / "tokenizer.json")
    (ckpt / "meta.json").write_text(json.dumps({"step": 7, "tokens": 1234}))
    return root


def test_run_eval_writes_every_result(run_dir, tmp_path):
    cfg = EvalConfig(batch_size=4, seq_len=32, sample_tokens=5, needle=NeedleConfig(lengths=[96], depths=[0.0, 1.0],
                                                                                     trials=1),
                     memorization=MemorizationConfig(docs_per_domain=3, prefix_tokens=8, continuation_tokens=8))
    cfg = with_flags(cfg, needle=True, contamination=True, memorization=True)
    written = run_eval(run_dir, None, tmp_path, cfg, device="cpu")
    assert set(written) == {"heldout", "samples", "needle", "needle_png", "contamination", "memorization"}
    held = json.loads((tmp_path / "heldout.json").read_text())
    assert held["step"] == 7 and held["seq_len"] == 32 and set(held["domains"]) == {"prose", "code"}
    for r in held["domains"].values():
        # An untrained model is worse than the unigram baseline, which is far better than 8 bits per byte.
        assert r["bits_per_byte"] > r["unigram_bits_per_byte"] > 0 and r["unigram_bits_per_byte"] < 8
        assert r["tokens"] > 0 and r["bytes"] >= r["tokens"]
    assert held["unigram"]["prose"]["bits_per_byte"] == held["domains"]["prose"]["unigram_bits_per_byte"]
    assert held["unigram_overall"]["tokens"] == held["overall"]["tokens"]
    samples = json.loads((tmp_path / "samples.json").read_text())["samples"]
    assert {s["domain"] for s in samples} == {"prose", "code"}
    assert (tmp_path / "samples" / "final.json").is_file()
    needle = json.loads((tmp_path / "needle.json").read_text())
    assert needle["lengths"] == [96] and needle["passed"] is False
    cont = json.loads((tmp_path / "contamination.json").read_text())
    assert {"heldout/prose", "heldout/code", "pretrain_offline_mc"} <= set(cont["benchmarks"])
    mem = json.loads((tmp_path / "memorization.json").read_text())
    assert mem["train"]["domains"]["prose"]["samples"] == 3 and "heldout" in mem


def test_cli_eval_and_audits(run_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(run_dir), "--out", str(tmp_path), "--device", "cpu",
                              "seq_len=32", "sample_tokens=3", "max_docs_per_domain=3"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "heldout.json").read_text())["seq_len"] == 32
    res = runner.invoke(app, ["audit", "contamination", str(run_dir), "--out", str(tmp_path), "--ngram", "8"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "contamination.json").read_text())["ngram"] == 8
    res = runner.invoke(app, ["audit", "memorization", str(run_dir), "--out", str(tmp_path), "--docs", "2",
                              "--prefix", "4", "--continuation", "4", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    for cmd in (["eval", "--help"], ["audit", "contamination", "--help"], ["audit", "memorization", "--help"]):
        assert runner.invoke(app, cmd).exit_code == 0
    bad = runner.invoke(app, ["eval", str(run_dir), "batch_size=0"])
    assert bad.exit_code != 0 and "eval.batch_size" in str(bad.exception)
    missing = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert isinstance(missing.exception, FileNotFoundError)


@pytest.mark.slow
def test_cli_eval_runs_offline_lm_eval_task(run_dir, tmp_path):
    pytest.importorskip("lm_eval")
    res = CliRunner().invoke(app, ["eval", str(run_dir), "--out", str(tmp_path), "--device", "cpu",
                                   "--tasks", "pretrain_offline_mc", "sample_tokens=2", "max_docs_per_domain=2"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "lm_eval.json").read_text())
    assert 0.0 <= out["results"]["pretrain_offline_mc"]["acc,none"] <= 1.0


def test_the_cli_hands_eval_the_runs_context_and_token_directory(run_dir, tmp_path):
    """The eval stage takes its EvalConfig and explicit arguments; the CLI (the composition root) reads the
    run config recorded with the checkpoint and passes its train.seq_len and data.tokens."""
    from pretrain.config import resolve, save

    run = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", run / "checkpoints")
    shutil.copytree(run_dir / "tokens", tmp_path / "elsewhere")  # not <run>/tokens: only data.tokens names it
    save(resolve("tiny", [f"data.tokens={tmp_path / 'elsewhere'}", "train.seq_len=48"]), run / "config.toml")
    res = CliRunner().invoke(app, ["eval", str(run), "--out", str(tmp_path / "out"), "--device", "cpu",
                                   "sample_tokens=2", "max_docs_per_domain=2"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "heldout.json").read_text())["seq_len"] == 48
    # The API alone knows nothing of the run config: no token directory to be found, the model's context.
    with pytest.raises(FileNotFoundError, match="--tokens"):
        run_eval(run, None, tmp_path / "api", EvalConfig(sample_tokens=2), device="cpu")
    run_eval(run, tmp_path / "elsewhere", tmp_path / "api", EvalConfig(sample_tokens=2, max_docs_per_domain=2),
             device="cpu")
    assert json.loads((tmp_path / "api" / "heldout.json").read_text())["seq_len"] == 96
