"""benchmarks/device/gpu_checks.sh, the one call a lent GPU machine runs, rehearsed on the CPU (CPU=1:
the benchmark's --dry-run): it finds the gpu tests, runs each part and leaves its files under $OUT, so a
short lease is not spent on a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_the_gpu_checks_script_runs_every_part_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, CPU="1", PY=sys.executable, OUT=str(out), PARTS="tests 124m", OMP_NUM_THREADS="1",
               WHEELS=str(tmp_path / "no-wheels"), SITE=str(tmp_path / "site"))  # this venv has the packages
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/device/gpu_checks.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "gpu_checks: done, status 0" in proc.stdout
    env_txt = (out / "env.txt").read_text()
    assert "torch" in env_txt
    for name in ("torchao", "orjson", "zstandard", "tomli_w", "pretrain"):  # triton: only with CUDA builds
        line = next(x for x in env_txt.splitlines() if x.startswith(name + " "))
        assert "MISSING" not in line, line
    log = (out / "gpu_tests.log").read_text()
    # Every file holding gpu tests was found, and its tests were collected (they skip without CUDA).
    for f in ("test_model_attention_kernels.py", "test_cuda_steps.py", "test_parallelize.py"):
        assert f in proc.stdout, f
    assert "skipped" in log and "error" not in log.lower()
    assert (out / "gpu_tests.xml").is_file()
    rows = json.loads((out / "train_124m.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["gpt2-124m", "124M T=8192", "124M T=32768"]
    assert not (out / "train_1b.json").exists()  # not among PARTS


def test_an_unknown_part_is_one_line_before_anything_runs(tmp_path):
    env = dict(os.environ, CPU="1", PY=sys.executable, OUT=str(tmp_path / "out"), PARTS="tests 2b")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/device/gpu_checks.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gpu_checks: PARTS: unknown part '2b' (known: tests 1b 124m)"
    assert not (tmp_path / "out" / "env.txt").exists()
