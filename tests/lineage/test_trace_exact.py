"""trace step and trace doc against what the trainer consumed, on a run that switched mixture (two
stages), used FIM, was resumed mid-stage and went from 1 process to 2 gloo ranks (torchrun)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from consumed import read_consumed

STAGES = ('train.stages=[{name="prose_heavy", steps=4, mixture={prose=0.8, code=0.2}}, '
          '{name="code_heavy", steps=4, mixture={code=0.9, prose=0.1}}]')
OVER = ["train.micro_batch=2", "train.global_batch=4", "train.max_steps=8", "train.checkpoint_interval=2",
        "train.keep_last=10", "data.loader.fim.rate=0.5", STAGES, 'train.callbacks=["consumed:Consumed"]']


@pytest.fixture(scope="module")
def resumed_run(tiny_data, tmp_path_factory) -> Path:
    """8 steps in one process; then the checkpoints after step 6 dropped and steps 7-8 redone by 2 ranks."""
    from train_conftest import tiny_cfg, torchrun_cmd

    from pretrain.train import train

    run = tmp_path_factory.mktemp("lineage") / "run"
    train(tiny_cfg(tiny_data, *OVER), run, progress=False)
    for name in ("step_00000008", "final"):
        shutil.rmtree(run / "checkpoints" / name)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(torchrun_cmd(tiny_data, run, *OVER, 'train.distributed="ddp"'), env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def _rows(trace: dict) -> dict[tuple[int, int], list]:
    rows: dict[tuple[int, int], list] = {}
    for d in trace["documents"]:
        rows.setdefault((d["global_micro_batch"], d["row"]), []).append([d["shard"], d["index"]])
    return rows


@pytest.mark.slow
def test_trace_step_is_what_each_rank_trained_on(resumed_run):
    from pretrain.lineage.trace import trace_step

    consumed = read_consumed(resumed_run)
    assert sorted(consumed) == list(range(1, 9))
    worlds = {}
    for step in range(1, 9):
        got = trace_step(resumed_run, step)
        worlds[step] = got["world_size"]
        assert _rows(got) == consumed[step], step
        for d in got["documents"]:  # the rank and micro-batch are those of the rank that trained the row
            assert d["rank"] == d["global_micro_batch"] % got["world_size"]
            assert Path(d["source"]).is_file() and d["tokens"] == d["last"] - d["first"] + 1
    assert worlds == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 2, 8: 2}
    rows = {s: {(d["global_micro_batch"], d["row"]): d["domain"] for d in trace_step(resumed_run, s, origins=False)
                ["documents"]} for s in range(1, 9)}
    code = [sum(v == "code" for s in steps for v in rows[s].values()) for steps in ((1, 2, 3, 4), (5, 6, 7, 8))]
    assert code[1] > code[0]  # the second stage's code-heavy mixture


@pytest.mark.slow
def test_trace_doc_agrees_with_trace_step(resumed_run):
    from pretrain.lineage.trace import trace_doc, trace_step

    consumed = read_consumed(resumed_run)
    by_doc: dict[tuple[str, int], set[int]] = {}
    ids: dict[tuple[str, int], str] = {}
    for step in range(1, 9):
        for d in trace_step(resumed_run, step, origins=False)["documents"]:
            by_doc.setdefault((d["shard"], d["index"]), set()).add(step)
            ids[(d["shard"], d["index"])] = d["id"]
    from pretrain.data.shards import ShardSet

    fim_docs = 0
    for key, steps in by_doc.items():
        got = trace_doc(resumed_run, ids[key])
        assert {s["step"] for s in got["steps"]} == steps, key
        for s in got["steps"]:
            want = {(m, r) for (m, r), row in consumed[s["step"]].items() if list(key) in row}
            assert {(r["global_micro_batch"], r["row"]) for r in s["rows"]} == want
        assert got["checkpoints"] and Path(got["source"]).is_file()
        # a FIM document's stream holds 3 sentinels more than BOS + body + EOS
        body = int(ShardSet(Path(key[0]).parent).lengths[key[1]])
        fim_docs += max(r["last"] for s in got["steps"] for r in s["rows"]) > body + 1
    assert fim_docs > 0
