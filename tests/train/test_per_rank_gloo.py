"""Per-rank data in real 2-process gloo runs (torchrun): each rank builds only its micro-batches and
the union of the ranks' rows, step by step, is the single-process stream; a DDP checkpoint resumes in
one process on the same stream."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).parent / "per_rank_worker.py"


def test_two_gloo_ranks_union_equals_one_process(tiny_data, tmp_path):
    steps, per_rank, world = 5, 2, 2
    out = tmp_path / "gathered.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(world), str(WORKER), str(tiny_data.tokens), str(tiny_data.tokenizer), str(out),
                           str(steps), str(per_rank)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out, weights_only=False)
    ranks = got["ranks"]

    sys.path.insert(0, str(WORKER.parent))
    from per_rank_worker import build

    single = build(str(tiny_data.tokens), str(tiny_data.tokenizer), 0, 1)
    for step in range(steps):
        want = [single.next_batch() for _ in range(world * per_rank)]
        reduced, counted = got["targets"][step]
        assert reduced == counted == sum(int((b.targets != -100).sum()) for b in want)
        for i, w in enumerate(want):  # rank r's j-th micro-batch is global micro-batch j * world + r
            ids, targets, doc_ids, lineage = ranks[i % world]["rows"][step][i // world]
            assert torch.equal(ids, w.input_ids) and torch.equal(targets, w.targets), (step, i)
            assert torch.equal(doc_ids, w.doc_ids) and lineage == w.lineage, (step, i)
    state = {k: v for k, v in single.state_dict().items() if k not in ("rank", "world_size")}
    for r in ranks:
        assert {k: v for k, v in r["state"].items() if k not in ("rank", "world_size")} == state
        assert r["read"] < single.tokens_read  # a rank renders less than the whole stream


OVER = ["train.micro_batch=2", "train.global_batch=4", "train.max_steps=6", "train.checkpoint_interval=2"]


def _losses(run: Path) -> dict[int, float]:
    import json

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["type"] == "train"}


@pytest.mark.slow
def test_ddp_run_resumes_in_one_process_on_the_same_stream(tiny_data, tmp_path):
    """2 gloo processes to step 6; then the checkpoint of step 4 resumed by one process: the loader
    re-splits the stream (its state holds no rank), so steps 5-6 see the same rows and losses."""
    from conftest import tiny_cfg
    from pretrain.train import train

    run = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "pretrain.train", "tiny", f'data.tokens="{tiny_data.tokens}"', f'tokenizer.path="{tiny_data.tokenizer}"',
            "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32",
            "train.seq_len=32", "train.micro_batch=4", "train.warmup_steps=2", "train.log_interval=1",
            "train.peak_flops=1e11", "train.lr=3e-3", "eval.batch_size=8", "eval.max_docs_per_domain=4",
            "eval.max_tokens_per_domain=512", *OVER, 'train.distributed="ddp"', "--run-dir", str(run), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = _losses(run)
    resumed = tmp_path / "single"
    shutil.copytree(run, resumed)
    for name in ("step_00000006", "final"):
        shutil.rmtree(resumed / "checkpoints" / name)
    train(tiny_cfg(tiny_data, *OVER), resumed, progress=False)
    got = _losses(resumed)
    assert got.keys() == ref.keys()
    for step in (5, 6):
        assert got[step] == pytest.approx(ref[step], rel=1e-4), step
