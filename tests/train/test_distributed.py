"""Two processes on loopback (gloo): DDP and FSDP2 match the single-process losses; checkpoints are
sharded DCP and resume under any other plan (each of one process, DDP and FSDP to each of the others,
and FSDP -> FSDP) through DCP resharding. Each spawned run serves several assertions (they are the slow part)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import tiny_cfg, torchrun_cmd
from pretrain.train import train

OVER = ["train.micro_batch=2", "train.global_batch=4", "train.max_steps=6", "train.checkpoint_interval=2"]


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["type"] == "train"}


def _torchrun(data, run: Path, mode: str, optimizer: str = "adamw") -> None:
    args = torchrun_cmd(data, run, *OVER, f'train.distributed="{mode}"', f'train.optimizer="{optimizer}"')
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=400)
    rank0 = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("[rank0]") or "error:" in line)
    assert proc.returncode == 0, (rank0 or proc.stderr)[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("mode, optimizer", [("ddp", "adamw"), ("fsdp", "muon")])
def test_two_processes_match_one(tiny_data, tmp_path, mode, optimizer):
    """FSDP runs Muon (each matrix gathered for Newton-Schulz, its shard applied); DDP -> FSDP runs AdamW."""
    single = tiny_cfg(tiny_data, *OVER, f'train.optimizer="{optimizer}"')  # 2 micro-batches of 2 = 2 ranks x 2
    train(single, tmp_path / "single", progress=False)
    ref = _losses(tmp_path / "single")
    run = tmp_path / mode
    _torchrun(tiny_data, run, mode, optimizer)
    got = _losses(run)
    assert got.keys() == ref.keys()
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-4), step
    meta = json.loads((run / "checkpoints" / "final" / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["distributed"] == mode
    one = tmp_path / "single"

    def resume(path: Path, plan: str, expected: dict[int, float], rel: float) -> dict:
        """Drop the checkpoints after step 4 of ``path``, resume it under ``plan``, check steps 1-6."""
        shutil.rmtree(path / "checkpoints" / "step_00000006")
        shutil.rmtree(path / "checkpoints" / "final")
        if plan == "none":
            train(single, path, progress=False)
        else:
            _torchrun(tiny_data, path, plan, optimizer)
        again = _losses(path)
        assert again.keys() == expected.keys()
        for step in expected:
            assert again[step] == pytest.approx(expected[step], rel=rel), step
        return json.loads((path / "checkpoints" / "final" / "meta.json").read_text())

    if mode == "ddp":
        # DDP -> one process: the replicated DCP state loads into a plain model and optimizer.
        assert resume(run, "none", got, 1e-5)["world_size"] == 1
        # One process -> DDP: the single run's step 4 resumed by 2 ranks gives the single run's steps 5-6.
        assert resume(one, "ddp", ref, 1e-4)["distributed"] == "ddp"
        # DDP -> FSDP: step 4 of the DDP run under FSDP (this used to crash in _foreach_lerp_).
        assert resume(run, "fsdp", got, 1e-5)["distributed"] == "fsdp"
    if mode == "fsdp":
        step4 = run / "checkpoints" / "step_00000004"
        # Model and optimizer are sharded DCP, one file per rank; no rank gathered full weights to save them.
        assert (step4 / "dcp" / ".metadata").is_file() and len(list((step4 / "dcp").glob("*.distcp"))) == 2
        assert not (step4 / "model.safetensors").exists()
        resume(run, "fsdp", got, 1e-5)  # FSDP -> FSDP
        # FSDP -> DDP: the sharded state (Muon momentum included) is gathered into replicated tensors.
        assert resume(run, "ddp", got, 1e-5)["distributed"] == "ddp"
        # FSDP -> one process: the 2-rank shards are resharded into whole tensors.
        assert resume(run, "none", got, 1e-5)["world_size"] == 1
        # One process -> FSDP: the single run's whole tensors (Muon momentum included) are sharded on load.
        assert resume(one, "fsdp", ref, 1e-4)["distributed"] == "fsdp"
