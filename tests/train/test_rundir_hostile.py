"""`pretrain train` at the edges (issue 32): a run directory that cannot be written stops the command in
one line before any data is read (read-only file system, no permission, a file where a folder goes), and a
validation split shorter than one sequence is trained on with a one-line warning."""

from __future__ import annotations

import shutil

from pretrain.data.record import Document, write_jsonl


def _args(data, run, *extra: str, tokens=None) -> list[str]:
    return ["train", "tiny", f"data.tokens={tokens or data.tokens}", f"tokenizer.path={data.tokenizer}", "model.dim=32",
            "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32", "train.seq_len=32",
            "train.micro_batch=2", "train.max_steps=2", "train.warmup_steps=1", "eval.max_docs_per_domain=2",
            *extra, "--run-dir", str(run), "--no-progress"]


def test_readonly_run_dir_is_one_line(tiny_data, cli, readonly_dir):
    rc, out, err = cli(*_args(tiny_data, readonly_dir / "run"))
    assert rc == 2 and err == f"error: run directory {readonly_dir / 'run'} is not writable: read-only file system\n"


def test_run_dir_without_permission_or_under_a_file_is_one_line(tiny_data, cli, cli_subprocess, tmp_path):
    (tmp_path / "locked").mkdir(mode=0o555)
    got = cli_subprocess(*_args(tiny_data, tmp_path / "locked" / "run"), drop_dac=True)
    assert got.returncode == 2, got.stderr[-2000:]
    assert got.stderr == f"error: run directory {tmp_path / 'locked' / 'run'} is not writable: permission denied\n"
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("not a folder")
    rc, _, err = cli(*_args(tiny_data, run))
    assert rc == 2 and err == f"error: run folder {run / 'checkpoints'} is not writable: not a directory\n"


def test_validation_split_shorter_than_a_sequence_is_warned(tiny_data, cli, tmp_path):
    from pretrain.data.tokenize import tokenize_corpus

    write_jsonl(tmp_path / "short.jsonl", [Document("the model", source="s:0", domain="prose")])
    tokenize_corpus(tmp_path / "short.jsonl", tiny_data.tokenizer, tmp_path / "short", val_fraction=0.99, workers=1)
    tokens = tmp_path / "tokens"
    shutil.copytree(tiny_data.tokens / "train", tokens / "train")
    shutil.copytree(tmp_path / "short" / "val", tokens / "val")
    rc, _, err = cli(*_args(tiny_data, tmp_path / "run", tokens=tokens))
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: validation split {tokens / 'val'} is shorter "
                                                         "than one sequence (33 tokens) in prose (")
    rc, _, err = cli(*_args(tiny_data, tmp_path / "run2"))
    assert rc == 0 and "validation split" not in err  # the full split: nothing to say
