"""A curated run end to end: raw JSONL -> curate (MinHash) -> tokenizer -> shards -> train -> eval.
trace doc names why a document was never trained on; verify holds on the untouched run and names the
file after one flipped byte; diff names a changed config key and a changed seed; bad input is one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

WORDS = ("river stone light window garden paper music winter morning letter forest harbor candle bridge "
         "silver meadow thunder lantern orchard valley").split()


def _config(run: Path, *extra: str):
    from pretrain.config import resolve

    return resolve("tiny", [
        f'data.tokens="{run / "tokens"}"', f'tokenizer.path="{run / "tokenizer" / "tokenizer.json"}"',
        "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32",
        "train.seq_len=32", "train.micro_batch=4", "train.max_steps=4", "train.warmup_steps=1",
        "train.checkpoint_interval=2", "train.peak_flops=1e11", "eval.batch_size=8", "eval.max_docs_per_domain=4",
        "eval.max_tokens_per_domain=512", "eval.needle.enabled=false", *extra])


@pytest.fixture(scope="module")
def curated_run(tmp_path_factory) -> dict:
    from pretrain.data.curate import CurateConfig, curate
    from pretrain.data.record import read_dir
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.eval import run_eval
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer
    from pretrain.train import train

    root = tmp_path_factory.mktemp("provenance")
    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 200))) for _ in range(80)]
    near = texts[0].split()
    near[-1] = "zebra"  # one word changed at the end: a near duplicate of the first document
    texts.insert(40, " ".join(near))
    raw = root / "raw" / "docs.jsonl"
    raw.parent.mkdir()
    raw.write_text("".join(json.dumps({"text": t, "domain": "prose"}) + "\n" for t in texts))
    run = root / "run"
    curate([raw], run / "curated", CurateConfig(steps=[{"type": "minhash_dedup"}]), workers=1, progress=False)
    data = run / "curated" / "data"
    train_tokenizer(read_dir(data), TokenizerConfig(vocab_size=300, n_reserved=2), run / "tokenizer",
                    val_fraction=0.15, inputs=[data])
    tokenize_corpus(data, run / "tokenizer" / "tokenizer.json", run / "tokens", val_fraction=0.15, workers=1)
    cfg = _config(run)
    train(cfg, run, progress=False)
    run_eval(run / "checkpoints" / "final", run / "tokens", run / "eval", cfg.eval)
    return {"run": run, "raw": raw, "cfg": cfg}


def _cli(*args: str):
    from pretrain.cli import app

    return CliRunner().invoke(app, list(args))


def test_a_minhash_duplicate_says_which_step_and_which_document(curated_run):
    from pretrain.lineage.trace import trace_doc

    run, raw = curated_run["run"], curated_run["raw"]
    removed = [json.loads(x) for x in _zst_lines(run / "curated" / "removed")]
    assert len(removed) == 1
    dup = removed[0]
    for key in (dup["id"], f"{raw}:41"):  # by record id, and by the raw file and line
        got = trace_doc(run, key)
        assert got["steps"] == [] and got["id"] == dup["id"]
        assert "minhash_dedup" in got["never_trained"] and dup["meta"]["duplicate_of"] in got["never_trained"]
        assert got["source"] == str(raw)
    kept = trace_doc(run, dup["meta"]["duplicate_of"])  # the document kept in its place
    assert kept["origin"]["raw"] == {"path": str(raw), "exists": True, "line": 1}


def _zst_lines(d: Path) -> list[str]:
    from pretrain.data.record import open_text

    out = []
    for f in sorted(d.glob("*.jsonl.zst")):
        with open_text(f) as fh:
            out += [x for x in fh.read().splitlines() if x]
    return out


def test_trace_doc_by_raw_line_names_origin_steps_and_checkpoints(curated_run):
    run, raw = curated_run["run"], curated_run["raw"]
    res = _cli("trace", "step", "1", str(run), "--json")
    assert res.exit_code == 0, res.output
    step = json.loads(res.output)
    assert step["step"] == 1 and step["documents"]
    doc = step["documents"][0]
    assert doc["source"] == str(raw) and doc["origin"]["curation"]["passed"] == ["minhash_dedup"]
    assert doc["origin"]["record"]["file"].startswith(str(run / "curated" / "data"))
    line = doc["origin"]["raw"]["line"]
    res = _cli("trace", "doc", f"{raw}:{line}", str(run), "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["id"] == doc["id"] and got["source"] == str(raw) and 1 in [s["step"] for s in got["steps"]]
    assert sorted(got["checkpoints"]) == ["final", "step_00000002", "step_00000004"] and got["last_checkpoint_before"] is None


def test_a_held_out_document_is_never_trained_on(curated_run):
    from pretrain.data.shards import load_split
    from pretrain.lineage.trace import trace_doc

    val = next(iter(load_split(curated_run["run"] / "tokens", "val").values()))
    got = trace_doc(curated_run["run"], val.doc_source(0).id)
    assert got["steps"] == [] and "held out for validation" in got["never_trained"]


def test_verify_holds_then_names_each_flipped_file(curated_run):
    run = curated_run["run"]
    res = _cli("verify", str(run))
    assert res.exit_code == 0, res.output
    assert "5 manifests (curate, tokenizer, tokenize, train, eval)" in res.output
    victims = [next((run / "tokens" / "train").glob("*/shard_00000.bin")),
               next((run / "curated" / "data").glob("*.jsonl.zst")),
               run / "checkpoints" / "step_00000002" / "trainer_state.pt"]
    for victim in victims:
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        original = victim.read_bytes()
        victim.write_bytes(bytes(data))
        try:
            res = _cli("verify", str(run))
        finally:
            victim.write_bytes(original)
        assert res.exit_code == 1
        lines = [x for x in res.output.splitlines() if x.startswith(str(victim))]
        assert lines, res.output
    assert _cli("verify", str(run)).exit_code == 0


def test_diff_names_a_config_key_and_a_seed(curated_run, tmp_path):
    from pretrain.train import train

    run = curated_run["run"]
    for name, extra, want in (("lr", "train.lr=0.01", "config train.lr"), ("seed", "train.seed=7", "seed: 0 -> 7")):
        other = tmp_path / name
        train(_config(run, extra), other, progress=False)
        res = _cli("diff", str(run), str(other))
        assert res.exit_code == 0, res.output
        assert "first difference: stage train" in res.output and want in res.output, res.output


def test_bad_input_is_one_line(curated_run, tmp_path):
    import os
    import subprocess
    import sys

    run = curated_run["run"]
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    cases = [(["trace", "doc", "0123456789abcdef", str(run)], "unknown document '0123456789abcdef'"),
             (["trace", "step", "99", str(run)], "step 99 is beyond the steps run"),
             (["trace", "step", "1", str(old)], "no lineage step log"),
             (["verify", str(old)], "no stage manifests")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def one_line_error(args: list[str], want: str) -> None:
        proc = subprocess.run([sys.executable, "-c", "from pretrain.cli import main; main()", *args],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and want in lines[0], (args, proc.stderr)

    for args, want in cases:
        one_line_error(args, want)
    manifest = run / "tokens" / "manifest.json"  # the shards re-made after training: trace refuses them
    original = manifest.read_bytes()
    manifest.write_bytes(original + b" ")
    try:
        one_line_error(["trace", "step", "1", str(run)], "not the ones this run trained on")
    finally:
        manifest.write_bytes(original)


def test_diff_names_a_changed_input_and_verify_a_missing_manifest(tmp_path):
    from pretrain.lineage.manifest import write_manifest
    from pretrain.lineage.verify import diff, verify

    for name, text in (("a", "one\n"), ("b", "two\n")):
        raw = tmp_path / name / "raw.txt"
        raw.parent.mkdir()
        raw.write_text(text)
        (tmp_path / name / "curated").mkdir()
        (tmp_path / name / "curated" / "stats.json").write_text("{}")
        write_manifest(tmp_path / name / "curated", "curate", inputs=[("raw", raw)], config={"steps": []})
    got = diff(tmp_path / "a", tmp_path / "b")
    assert got == {"stage": "curate", "differences": ["input raw raw.txt: differs"]}
    write_manifest(tmp_path / "a" / "tokens", "tokenize", inputs=[("records", tmp_path / "a" / "curated" / "stats.json")])
    (tmp_path / "a" / "curated" / "manifest.json").unlink()
    broken, _ = verify(tmp_path / "a")
    assert broken == [f"{tmp_path / 'a' / 'curated' / 'manifest.json'}: missing (manifest consumed by stage tokenize, "
                      f"{tmp_path / 'a' / 'tokens' / 'manifest.json'})"]
