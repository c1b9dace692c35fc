"""Per-rank data in a real 2-process gloo run (torchrun): each rank builds only its micro-batches and
the union of the ranks' rows, step by step, is the single-process stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
        assert got["targets"][step] == sum(int((b.targets != -100).sum()) for b in want)
        for i, w in enumerate(want):  # rank r's j-th micro-batch is global micro-batch j * world + r
            ids, targets, doc_ids, lineage = ranks[i % world]["rows"][step][i // world]
            assert torch.equal(ids, w.input_ids) and torch.equal(targets, w.targets), (step, i)
            assert torch.equal(doc_ids, w.doc_ids) and lineage == w.lineage, (step, i)
    state = {k: v for k, v in single.state_dict().items() if k not in ("rank", "world_size")}
    for r in ranks:
        assert {k: v for k, v in r["state"].items() if k not in ("rank", "world_size")} == state
        assert r["read"] < single.tokens_read  # a rank renders less than the whole stream
