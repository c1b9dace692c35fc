"""Step time of recipe variants, interleaved round by round so a shared machine's load hits all alike.

    python benchmarks/recipe_steps.py --variants "base=;muon=train.optimizer=\"muon\"" [--preset quickstart]

Each variant is a name and config overrides over the preset (space-separated, as on the command line).
One step is what the trainer does per update on one process: forward with targets (and document ids
under the first stage's ``doc_mask``), backward, gradient clipping, the optimizer step (the real ``build_optimizer``
groups), on random tokens of the preset's micro-batch x seq_len, each row ``--docs-per-row`` documents. ``train.compile=true`` compiles the model (the first step's time is reported on its
own). Prints one JSON line per variant: median ms per step over the rounds, tokens/s, and the ratio to the
first variant.
"""

# ruff: noqa: I001  (pretrain is imported before torch: it sets OpenMP's wait policy)
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time

import pretrain  # noqa: F401
import torch

from pretrain.config import resolve
from pretrain.model import Transformer
from pretrain.train.optim import build_optimizer


def build(preset: str, overrides: list[str]):
    cfg = resolve(preset, ["model.vocab_size=1024", *overrides])
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    opt = build_optimizer(model, cfg.train)
    fwd = torch.compile(model) if cfg.train.compile else model
    shape = (cfg.train.micro_batch, cfg.train.seq_len)
    return cfg, model, fwd, opt, shape


def doc_mask(cfg) -> bool:
    """The first stage's document masking (a stage-less run has one default stage, masked)."""
    return cfg.train.stages[0].doc_mask if cfg.train.stages else True


def step(model, fwd, opt, shape, vocab: int, doc_mask: bool = False, docs_per_row: int = 1) -> None:
    x = torch.randint(0, vocab, shape)
    # As the trainer calls the model: full logits, and document ids when train.doc_mask is on and some row
    # holds more than one document (rows of one document each take the causal kernel, pretrain.train.step).
    ids = torch.arange(shape[1]).expand(shape) * docs_per_row // shape[1]
    out = fwd(x, x, ids if doc_mask and docs_per_row > 1 else None)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", required=True, help='"name=overrides;name=overrides" (first = reference)')
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--docs-per-row", type=int, default=1,
                    help="documents packed in each row (1: no document mask is needed; >1: the masked kernel)")
    args = ap.parse_args()

    variants = {}
    for item in args.variants.split(";"):
        name, _, over = item.partition("=")
        cfg, model, fwd, opt, shape = build(args.preset, shlex.split(over))
        t0 = time.perf_counter()
        step(model, fwd, opt, shape, cfg.model.vocab_size, doc_mask(cfg), args.docs_per_row)
        first = time.perf_counter() - t0
        for _ in range(args.warmup - 1):
            step(model, fwd, opt, shape, cfg.model.vocab_size, doc_mask(cfg), args.docs_per_row)
        variants[name.strip()] = dict(cfg=cfg, model=model, fwd=fwd, opt=opt, shape=shape, first_s=first, ms=[])
    for _ in range(args.rounds):
        for v in variants.values():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(v["model"], v["fwd"], v["opt"], v["shape"], v["cfg"].model.vocab_size, doc_mask(v["cfg"]),
                     args.docs_per_row)
            v["ms"].append(1000 * (time.perf_counter() - t0) / args.steps)
    ref = None
    for name, v in variants.items():
        ms = statistics.median(v["ms"])
        ref = ref or ms
        tokens = v["shape"][0] * v["shape"][1]
        print(json.dumps({"variant": name, "ms_per_step": round(ms, 1), "tokens_per_s": round(tokens / ms * 1000),
                          "vs_first": round(ms / ref, 3), "params": v["model"].num_params(),
                          "first_step_s": round(v["first_s"], 2), "rounds_ms": [round(m, 1) for m in v["ms"]]}))


if __name__ == "__main__":
    main()
