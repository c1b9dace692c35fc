"""Run comparison, TensorBoard scalars from metrics.jsonl, and the `pretrain report` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_fakerun import write_run
from typer.testing import CliRunner

from pretrain.report import compare_runs
from pretrain.report.tensorboard import write_scalars


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cmp")
    a = write_run(base / "lr3e-3", parts=("config", "metrics", "heldout"), steps=30, name="lr3e-3", lr=3e-3)
    b = write_run(base / "lr1e-3", parts=("config", "metrics", "heldout"), steps=30, seed=1, name="lr1e-3", lr=1e-3)
    return a, b


def test_compare_overlays_runs_and_names_the_ablated_field(two_runs, tmp_path: Path):
    page = compare_runs(list(two_runs), tmp_path / "cmp")
    html = page.read_text()
    ids = re.findall(r'<section id="([\w-]+)"', html)
    assert ids == ["runs", "config", "loss", "heldout", "optimisation"]
    assert html.count("<img") == 7  # train/val loss, val bpb, held-out bars, lr, grad norm, tokens/s
    config = re.search(r'<section id="config".*?</section>', html, re.S).group(0)
    assert "train.lr" in config and "0.003" in config and "0.001" in config
    assert "train.max_steps" not in config  # identical fields are not listed
    assert "lr3e-3" in html and "lr1e-3" in html


def test_compare_needs_two_runs(two_runs, tmp_path: Path):
    with pytest.raises(ValueError, match="at least two"):
        compare_runs([two_runs[0]], tmp_path)


def test_compare_tells_same_named_runs_apart(tmp_path: Path):
    a = write_run(tmp_path / "a", parts=("config",), name="tiny")
    b = write_run(tmp_path / "b", parts=("config",), name="tiny")
    html = compare_runs([a, b], tmp_path / "cmp").read_text()
    assert "tiny (a)" in html and "tiny (b)" in html
    assert "identical" in html


def test_tensorboard_mirrors_every_numeric_field(two_runs, tmp_path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = two_runs[0]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    out = write_scalars(run, tmp_path / "tb")
    write_scalars(run, tmp_path / "tb")  # a rebuild replaces, never duplicates
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {f"{r['type']}/{r['model']}/{k}" if r.get("model") else f"{r['type']}/{k}"
                for r in rows if r["type"] in ("train", "eval")
                for k, v in r.items() if k not in ("type", "step") and isinstance(v, (int, float))
                and not isinstance(v, bool)}
    assert tags == expected
    loss = acc.Scalars("train/loss")
    want = [(r["step"], r["loss"]) for r in rows if r["type"] == "train"]
    assert [(e.step, round(e.value, 4)) for e in loss] == [(s, pytest.approx(v, abs=1e-4)) for s, v in want]
    assert "events" in " ".join(acc.Tags()["tensors"])  # events as text


def test_tensorboard_without_metrics_names_the_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        write_scalars(tmp_path)


def test_cli_report_compare_and_tensorboard(two_runs, tmp_path: Path):
    from pretrain.cli import app

    runner = CliRunner()
    a, b = (write_run(tmp_path / n, parts=("config", "tokenizer"), name=n) for n in ("a", "b"))
    res = runner.invoke(app, ["report", "--compare", str(a), str(b), "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert "a vs b" in (tmp_path / "cmp" / "index.html").read_text()
    a = two_runs[0]
    res = runner.invoke(app, ["report", str(a), "--tensorboard-only"])
    assert res.exit_code == 0, res.output
    assert list((a / "tensorboard").glob("events.out.tfevents.*")) and not (a / "report").exists()
    res = runner.invoke(app, ["report", "--compare", str(a)])
    assert res.exit_code != 0 and "at least two" in res.output
    res = runner.invoke(app, ["report", "--help"])
    assert res.exit_code == 0 and "--compare" in res.output


def test_cli_report_single_run(tmp_path: Path):
    from pretrain.cli import app

    run = write_run(tmp_path / "run", parts=("config", "tokenizer"))
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert str(run / "report" / "index.html") in res.output.replace("\n", "")
