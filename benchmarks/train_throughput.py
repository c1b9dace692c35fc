"""Training throughput on CPU: the trainer against a plain eager loop of the same model, in one run.

    python benchmarks/train_throughput.py --quick                 # tiny preset, a few steps
    python benchmarks/train_throughput.py --presets tiny,quickstart --steps 20
    python benchmarks/train_throughput.py --quick --compile       # also torch.compile, whole model and per block

The data is synthetic token shards whose document lengths follow a log-normal law (median ~ seq_len / 2,
as in web and code corpora), so what packing saves is measured, not assumed. Throughput counts *useful*
tokens (targets that carry loss) per second; MFU uses the model's FLOPs per token and the measured CPU
fp32 matmul peak (pretrain.train.hardware).

Baseline ("plain eager"): the nanoGPT-style loop, one document per row padded to seq_len, a single
AdamW over all parameters (for-loop implementation), no document mask, fp32.
Trainer variants: packed rows with the document mask (default), packed without the mask, packed with
activation checkpointing, and optionally torch.compile.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pretrain.config import resolve
from pretrain.data.loader import PackedLoader, SpecialIds
from pretrain.data.loader_config import LoaderConfig, MixtureConfig
from pretrain.data.mixture import Mixture
from pretrain.data.shards import ShardWriter, load_split
from pretrain.model import Transformer
from pretrain.train.api import build_trainer
from pretrain.train.hardware import cpu_peak

SPECIAL = SpecialIds(bos=1, eos=2, pad=0)


def make_shards(root: Path, vocab: int, seq_len: int, n_tokens: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = []
    total = 0
    while total < n_tokens:
        n = int(np.clip(rng.lognormal(math.log(seq_len / 2), 1.0), 8, 8 * seq_len))
        lengths.append(n)
        total += n
    lengths = np.array(lengths)
    tokens = rng.integers(3, vocab, size=int(lengths.sum()))
    w = ShardWriter(root / "train" / "synthetic", "0" * 64, vocab)
    w.add(tokens, lengths, lengths * 4, [f"{i:016x}" for i in range(len(lengths))], ["synthetic"] * len(lengths))
    w.close()
    return load_split(root, "train")


class CountingLoader:
    """Wraps a loader and counts useful targets."""

    def __init__(self, inner):
        self.inner = inner
        self.useful = 0
        self.positions = 0

    def next_batch(self):
        b = self.inner.next_batch()
        self.useful += int((b.targets != -100).sum())
        self.positions += b.targets.numel()
        return b

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, s):
        self.inner.load_state_dict(s)


class Baseline:
    """Plain eager loop on padded rows (nanoGPT style)."""

    def __init__(self, cfg, shards):
        torch.manual_seed(0)
        self.model = Transformer(cfg.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=0.1, foreach=False)
        mix = Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()})
        self.loader = CountingLoader(PackedLoader(shards, cfg.train.seq_len, cfg.train.micro_batch, mix,
                                                  LoaderConfig(pack=False, doc_mask=False), special=SPECIAL))

    def step(self) -> None:
        b = self.loader.next_batch()
        out = self.model(b.input_ids, b.targets)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    @property
    def padding(self) -> float:
        return 1 - self.loader.inner.packing_efficiency


class Ours:
    """The Trainer's step (packed rows, document mask, parameter groups, metrics) driven step by step, so the
    timing covers training steps only (no checkpoint or evaluation)."""

    def __init__(self, cfg, shards, run: Path):
        torch.manual_seed(0)
        model = Transformer(cfg.model)
        holder = {}

        def make_loader(stage):
            lc = LoaderConfig(pack=True, doc_mask=stage.cfg.doc_mask)
            mix = Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()})
            holder["loader"] = CountingLoader(PackedLoader(shards, stage.seq_len, stage.micro_batch, mix, lc,
                                                           special=SPECIAL))
            return holder["loader"]

        self.tr = build_trainer(cfg, run, model, make_loader, progress=False, fresh=True)
        self.tr.begin()
        self.stage = self.tr.plan.stage_at(0)
        self.loader = holder["loader"]

    def step(self) -> None:
        self.tr.train_step(self.stage)
        self.tr.step += 1

    def close(self) -> None:
        self.tr.log.close()


def timed(runner, steps: int) -> float:
    """Useful tokens per second over ``steps`` steps."""
    runner.loader.useful = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        runner.step()
    return runner.loader.useful / (time.perf_counter() - t0)


def compare(runners: dict, steps: int, warmup: int, rounds: int) -> dict[str, float]:
    """Interleave the variants round by round and keep each one's median: other jobs on a shared machine
    then slow every variant alike instead of whichever happened to run at a busy moment."""
    for r in runners.values():
        for _ in range(warmup):
            r.step()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            samples[k].append(timed(r, steps))
    return {k: float(np.median(v)) for k, v in samples.items()}


def optimizer_comparison(steps: int, tmp: Path) -> None:
    """AdamW vs Muon on the tiny preset: held-out loss after the same steps on the same text-like data."""
    import random

    from pretrain.data.record import Document, write_jsonl
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer
    from pretrain.train import train

    rng = random.Random(0)
    words = [("".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(2, 8)))) for _ in range(400)]
    docs = []
    for i in range(600):  # Zipf-distributed words in sentences: learnable unigram/bigram structure
        sent = [" ".join(words[min(399, int(rng.paretovariate(1.1)) - 1)] for _ in range(rng.randint(5, 15)))
                for _ in range(rng.randint(2, 8))]
        docs.append(Document(". ".join(sent) + ".", source=f"synthetic:{i}", domain="text"))
    write_jsonl(tmp / "docs.jsonl", docs)
    tok = train_tokenizer(docs, TokenizerConfig(vocab_size=512, sample_bytes_per_domain=500_000, n_reserved=2),
                          tmp / "tok")
    tokenize_corpus(tmp / "docs.jsonl", tok, tmp / "tokens", val_fraction=0.1, workers=1)
    print(f"\noptimizers, tiny preset, {steps} steps (held-out loss of the final model):")
    for opt, lr in (("adamw", "3e-3"), ("muon", "3e-3")):
        cfg = resolve("tiny", [f'data.tokens="{tmp / "tokens"}"', f'tokenizer.path="{tmp / "tok" / "tokenizer.json"}"',
                               f"train.max_steps={steps}", f'train.optimizer="{opt}"', f"train.lr={lr}",
                               "train.log_interval=1000000"])
        t0 = time.perf_counter()
        res = train(cfg, tmp / f"run_{opt}", fresh=True, progress=False)
        print(f"  {opt:6s} val_loss {res.losses.get('val_loss', float('nan')):.4f}  "
              f"train_loss {res.losses['train_loss']:.4f}  ({time.perf_counter() - t0:.1f}s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny preset, few steps")
    ap.add_argument("--presets", default="tiny,quickstart", help="comma-separated presets")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--optimizers", type=int, default=0, metavar="STEPS",
                    help="also compare AdamW and Muon over this many steps on the tiny preset")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = ["tiny"] if args.quick else [p for p in args.presets.split(",") if p]
    steps = 4 if args.quick else args.steps
    peak, source = cpu_peak()
    print(f"peak: {peak / 1e9:.0f} GFLOP/s ({source}); torch threads {torch.get_num_threads()}")
    if args.optimizers:
        with tempfile.TemporaryDirectory() as tmp:
            optimizer_comparison(args.optimizers, Path(tmp))
    for name in presets:
        common = ["train.grad_accum=1", "train.global_batch=0", 'train.spike.policy="off"',
                  "train.log_interval=1000000", f"train.peak_flops={peak}"]
        cfg = resolve(name, common)
        cfg.model.vocab_size = cfg.tokenizer.vocab_size
        T = cfg.train.seq_len
        flops = Transformer(cfg.model).flops_per_token(T)
        variants = {
            "trainer: packed + doc mask": [],
            "trainer: packed, no doc mask": ['train.stages=[{name = "bulk", doc_mask = false}]'],
            "trainer: packed + doc mask + act. ckpt": ["train.activation_checkpointing=true"],
        }
        if args.compile:
            variants["trainer: packed + doc mask + compile"] = ["train.compile=true"]
            variants["trainer: packed + doc mask + compile per block"] = ["train.compile=true",
                                                                          'train.compile_scope="blocks"']
        with tempfile.TemporaryDirectory() as tmp:
            shards = make_shards(Path(tmp) / "tokens", cfg.model.vocab_size, T,
                                 n_tokens=(steps * args.rounds + args.warmup + 4) * cfg.train.micro_batch * T * 3)
            runners = {"plain eager (padded rows)": Baseline(cfg, shards)}
            for label, extra in variants.items():
                vcfg = resolve(name, common + extra)
                vcfg.model.vocab_size = cfg.model.vocab_size
                runners[label] = Ours(vcfg, shards, Path(tmp) / f"run{len(runners)}")
            if args.compile:
                for label in ("trainer: packed + doc mask + compile", "trainer: packed + doc mask + compile per block"):
                    t0 = time.perf_counter()
                    runners[label].step()
                    print(f"{label.removeprefix('trainer: packed + doc mask + ')}: first step {time.perf_counter() - t0:.1f}s")
            results = compare(runners, steps, args.warmup, args.rounds)
            pad = runners["plain eager (padded rows)"].padding
            for r in runners.values():
                if isinstance(r, Ours):
                    r.close()
            base = results["plain eager (padded rows)"]
        print(f"\n{name}: {sum(p.numel() for p in Transformer(cfg.model).parameters()) / 1e6:.2f}M params, "
              f"seq {T}, micro-batch {cfg.train.micro_batch}, padding in the baseline rows {pad:.0%}")
        print(f"  {'variant':52s} {'useful tok/s':>12s} {'MFU':>7s} {'vs plain':>9s}")
        for label, tps in results.items():
            print(f"  {label:52s} {tps:12,.0f} {tps * flops / peak:7.1%} {tps / base:8.2f}x")


if __name__ == "__main__":
    main()
