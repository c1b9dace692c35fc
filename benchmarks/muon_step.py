"""Muon's optimizer step alone: matrix by matrix, batched eager, batched compiled, on one model's matrices.

    python benchmarks/muon_step.py [--preset quickstart] [--steps 20] [--rounds 3] [overrides ...]

The Muon group is the preset's (the real ``build_optimizer`` groups and options) with random gradients;
the three paths are interleaved round by round so a shared machine's load hits all alike. Prints one
JSON line per path: median ms per step and the ratio to the matrix-by-matrix loop.
"""

# ruff: noqa: I001  (pretrain is imported before torch: it sets OpenMP's wait policy)
from __future__ import annotations

import argparse
import json
import statistics
import time

import pretrain  # noqa: F401
import torch

from pretrain.config import resolve
from pretrain.model import Transformer
from pretrain.train.muon import Muon
from pretrain.train.optim import build_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cfg = resolve(args.preset, ["model.vocab_size=1024", "train.optimizer=muon", *args.overrides])
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    built = build_optimizer(model, cfg.train)
    ref = next(o for o in getattr(built, "optimizers", [built]) if isinstance(o, Muon))
    params = ref.param_groups[0]["params"]
    paths = {"loop": dict(fused=False), "batched_eager": dict(fused=True), "batched_compiled": dict(fused=True, compile=True)}
    opts, ms = {}, {}
    for name, kw in paths.items():
        d = ref.defaults
        opts[name] = Muon([p for p in params], lr=d["lr"], momentum=d["momentum"], weight_decay=d["weight_decay"],
                          ns_steps=d["ns_steps"], ns=d["ns"], beta2=d["beta2"], cautious=d["cautious"], **kw)
        ms[name] = []
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    for o in opts.values():  # warm-up (compiles)
        for _ in range(3):
            o.step()
    for _ in range(args.rounds):
        for name, o in opts.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                o.step()
            ms[name].append(1000 * (time.perf_counter() - t0) / args.steps)
    base = statistics.median(ms["loop"])
    shapes = sorted({tuple(p.shape) for p in params})
    for name in paths:
        m = statistics.median(ms[name])
        print(json.dumps({"path": name, "ms_per_step": round(m, 2), "vs_loop": round(m / base, 3), "matrices": len(params),
                          "shapes": shapes, "rounds_ms": [round(x, 2) for x in ms[name]]}))


if __name__ == "__main__":
    main()
