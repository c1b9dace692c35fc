"""benchmarks/gpu_train.py --dry-run: every row of the GPU benchmark (124M, 1B, FP8, long context) runs
on the CPU with tiny shapes through the same code, so the GPU script cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_train.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("gpu_train_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    return bench


def test_gpu_benchmark_dry_run(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "rows.json"
    assert bench.main(["--dry-run", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    rows, notes = got["rows"], got["notes"]
    # bf16 rows of both models and the two long-context rows (scaled to T = 128 and 256) were measured
    assert [(r["label"], r["seq_len"]) for r in rows] == [("gpt2-124m", 64), ("llama-1b", 64),
                                                          ("124M T=8192", 128), ("124M T=32768", 256)]
    for r in rows:
        assert r["tokens_per_s"] > 0 and math.isfinite(r["mfu"]) and r["mem_gb"] > 0 and r["doc_mask"]
    # the FP8 rows reach the trainer and come back as its one-line refusal (no FP8 on a CPU)
    assert len(notes) == 2 and all("refused: config field 'train.fp8'" in n and "on cpu" in n for n in notes)
    printed = capsys.readouterr().out
    assert "tok/s" in printed and "MFU" in printed and "dry run" in printed
    assert "goal (1B bf16 MFU >= 45%): not judged on a dry run" in printed
    # On a GPU the same rows are judged: the best 1B bf16 row against 45%.
    one_b = dict(rows[1], mfu=0.47, compile_scope="blocks", tokens_per_s=51234.0)
    assert bench.goal_line([rows[0], one_b, dict(one_b, fp8=True, mfu=0.6)], False) == \
        "goal (1B bf16 MFU >= 45%): met, best 47.0% (blocks, 51,234 tok/s)"
    assert bench.goal_line([rows[0]], False).endswith("no 1B bf16 row was measured")


def test_a_failing_row_keeps_the_others_and_the_time_limit_lists_what_did_not_run(tmp_path, monkeypatch, capsys):
    """On a short device lease one broken row (a kernel, a compile) must not lose the table."""
    bench = load_bench()
    real = bench.measure

    def measure(case, *a, **kw):
        if case.label == "gpt2-124m":
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")
        return real(case, *a, **kw)

    monkeypatch.setattr(bench, "measure", measure)
    out = tmp_path / "rows.json"
    assert bench.main(["--dry-run", "--no-fp8", "--no-long-context", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [r["label"] for r in got["rows"]] == ["llama-1b"]
    assert got["notes"] == [next(n for n in got["notes"] if n.startswith("gpt2-124m"))]
    assert "failed: RuntimeError: CUDA error: an illegal memory access was encountered" in got["notes"][0]
    assert "more lines" not in got["notes"][0]
    capsys.readouterr()

    assert bench.main(["--dry-run", "--no-fp8", "--time-limit", "1e-9", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["rows"] == [] and len(got["notes"]) == 4
    assert all("not run: --time-limit 1e-09 s reached" in n for n in got["notes"])


def test_bad_limits_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        load_bench().main(["--dry-run", "--time-limit", "-5"])
    assert exc.value.code == 2
    assert "--time-limit must be >= 0" in capsys.readouterr().err
