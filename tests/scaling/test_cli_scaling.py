"""`pretrain scaling fit/plan/compute/downstream` and `pretrain ablate` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scaling_helpers import CHINCHILLA_CSV, TRUE_LAW, synthetic_points
from typer.testing import CliRunner

from pretrain.cli import app
from pretrain.scaling.points import write_points

runner = CliRunner()


def _json(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_fit_json_on_epoch_csv(tmp_path):
    out = _json(["scaling", "fit", str(CHINCHILLA_CSV), "--params-column", "Model Size", "--flops-column",
                 "Training FLOP", "--drop-highest", "5", "--starts", "2", "--out", str(tmp_path), "--json"])
    for key in ("E", "A", "B", "alpha", "beta", "objective", "n_points"):
        assert key in out
    assert out["n_points"] == 240 and out["objective"] <= 0.0010190
    assert out["alpha"] == pytest.approx(0.3473, rel=0.01)
    for name in ("fit.json", "fit.png", "extrapolation.png"):
        assert (tmp_path / name).is_file()
    # The fit file is a law the planner accepts.
    plan = _json(["scaling", "plan", "--compute", "5.76e23", "--law", str(tmp_path / "fit.json"), "--json"])
    assert 15 < plan["tokens_per_param"] < 25


def test_fit_default_columns_with_bootstrap_and_isoflop_plot(tmp_path):
    pts = synthetic_points(noise=0.002)
    rows = [{"params": n, "tokens": d, "loss": ell} for n, d, ell in zip(pts.params, pts.tokens, pts.loss, strict=True)]
    write_points(tmp_path / "points.csv", rows)
    out = _json(["scaling", "fit", str(tmp_path / "points.csv"), "--bootstrap", "5", "--starts", "4",
                 "--out", str(tmp_path / "fit"), "--json"])
    assert out["alpha"] == pytest.approx(TRUE_LAW.alpha, rel=0.1)
    assert set(out["ci"]) == {"E", "A", "B", "alpha", "beta"}
    assert out["approach2"]["a"] == pytest.approx(TRUE_LAW.a, abs=0.05)
    assert (tmp_path / "fit" / "isoflop.png").is_file()


def test_plan_json_interface():
    out = _json(["scaling", "plan", "--compute", "1e21", "--law", "hoffmann", "--json"])
    assert {"params", "tokens", "tokens_per_param", "compute"} <= set(out)
    assert out["compute"] == 1e21
    assert 6 * out["params"] * out["tokens"] == pytest.approx(1e21)
    hw = _json(["scaling", "plan", "--gpus", "8", "--hours", "24", "--mfu", "0.4", "--gpu", "A100",
                "--inference-tokens", "1e12", "--json"])
    assert hw["compute"] == pytest.approx(8 * 24 * 3600 * 312e12 * 0.4)
    assert hw["inference"]["params"] < hw["params"]


def test_compute_command():
    out = _json(["scaling", "compute", "tiny", "model.vocab_size=512", "--budget", "1e12"])
    assert out["params"] > 0 and out["steps"] >= 1
    assert out["tokens"] == pytest.approx(1e12 / out["flops_per_token"])


def test_downstream_command(tmp_path):
    import numpy as np

    from pretrain.scaling.downstream import AccuracySigmoid

    nll = np.linspace(0.5, 2.5, 12)
    acc = AccuracySigmoid(0.25, 0.9, 5.0, 1.4)(nll)
    write_points(tmp_path / "tasks.csv", [{"nll": a, "accuracy": b} for a, b in zip(nll, acc, strict=True)])
    out = _json(["scaling", "downstream", str(tmp_path / "tasks.csv"), "--chance", "0.25"])
    assert out["midpoint"] == pytest.approx(1.4, abs=0.01)


@pytest.mark.parametrize("args, exc, message", [
    (["scaling", "fit", "nosuch.csv"], FileNotFoundError, "points file not found: nosuch.csv"),
    (["scaling", "fit", str(CHINCHILLA_CSV)], ValueError, "no column 'params'"),
    (["scaling", "plan", "--compute", "1e20", "--law", "nolaw"], FileNotFoundError, "neither a preset"),
    (["scaling", "plan"], ValueError, "give --compute"),
    (["ablate", "tiny", "--vary", "model.dim"], ValueError, "config field 'vary'"),
])
def test_user_errors_name_the_problem(args, exc, message):
    result = runner.invoke(app, args)
    assert isinstance(result.exception, exc)
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_user_error_prints_one_line():
    proc = subprocess.run([sys.executable, "-c", "from pretrain.cli import main; main()", "scaling", "fit", "nosuch.csv"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: points file not found: nosuch.csv"


def test_sweep_dry_run_and_bad_shape():
    result = runner.invoke(app, ["scaling", "sweep", "tiny", "model.vocab_size=320", "--budgets", "1e10",
                                 "--shapes", "16x1,32x2", "--head-dim", "8", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "C1e10-d16-l1-h2" in result.output and "C1e10-d32-l2-h4" in result.output
    bad = runner.invoke(app, ["scaling", "sweep", "tiny", "--shapes", "64x2x5", "--dry-run"])
    assert isinstance(bad.exception, ValueError) and "shapes" in str(bad.exception)
