"""A time-budgeted run under torchrun: every rank plans and stops on rank 0's clock. Rank 1 here starts
2 s late on its own clock; planning on per-rank clocks, it would stop a step or more before rank 0,
which would then wait in the next all-reduce until the test's timeout."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import torchrun_cmd


@pytest.mark.slow
def test_ranks_stop_together_on_rank0s_clock(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = torchrun_cmd(tiny_data, run, "train.micro_batch=2", "train.warmup_steps=4", "train.log_interval=5",
                        "train.max_steps=100000", "train.time_limit_s=8", "train.checkpoint_interval=0",
                        "eval.interval=0", 'train.distributed="ddp"', 'train.callbacks=["rank_clock:LateRank"]')
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2] / "helpers"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    events = {r["event"]: r for r in rows if r["type"] == "event"}
    assert "time_limit" in events or events["done"]["step"] == rows[-1]["step"]
    train_rows = [r for r in rows if r["type"] == "train"]
    last = train_rows[-1]
    # Both ranks finished the same plan (no hang) within the budget on rank 0's clock. Not asserted: that
    # the plan filled the budget; it is sized from the first steps and re-planned twice, so steps that
    # speed up after the last re-plan end it early (test_optim_precision covers a speed-up before it).
    assert last["step"] > 10 and last["time_s"] <= 8.0 + 1.0
