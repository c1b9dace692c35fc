"""Batch production speed of the packing loader, from memory-mapped shards, on one core.

Writes a synthetic shard (random token ids, document lengths drawn from a log-normal around ~800
tokens, like web text), then times ``next_batch()`` for several loader settings side by side and prints
tokens/s and the ratio to the 20M tokens/s goal. Usage::

    python benchmarks/loader_throughput.py [--quick] [--tokens 50000000]
    python benchmarks/loader_throughput.py --quick --ranks 1,2,4,8   # per-rank data, side by side

``--ranks``: the time rank 0 of N spends per micro-batch it trains on, when it builds only its own
(``PackedLoader(rank, world_size)``: the others' rows are skipped by document lengths) against the
former scheme, where every rank packed all N micro-batches and kept one; plus the tokens it read.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pretrain.data.loader import PackedLoader, SpecialIds  # noqa: E402
from pretrain.data.loader_config import FIMConfig, LoaderConfig, MixtureConfig  # noqa: E402
from pretrain.data.mixture import Mixture  # noqa: E402
from pretrain.data.shards import ShardSet, ShardWriter  # noqa: E402

GOAL = 20e6


def write_domain(root: Path, name: str, n_tokens: int, seed: int) -> ShardSet:
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.lognormal(np.log(800), 1.0, size=n_tokens // 400)).astype(np.int64)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_tokens) + 1]
    w = ShardWriter(root / name, "0" * 64, vocab_size=32000)
    step = 10_000
    for i in range(0, len(lengths), step):
        ln = lengths[i:i + step]
        w.add(rng.integers(10, 32000, size=int(ln.sum()), dtype=np.uint16), ln, ln * 4,
              [f"{j:016x}" for j in range(i, i + len(ln))], [f"synthetic@{j}" for j in range(i, i + len(ln))])
    w.close()
    return ShardSet(root / name)


def measure(shards, cfg: LoaderConfig, seq_len: int, micro_batch: int, seconds: float) -> tuple[float, float]:
    special = SpecialIds(bos=0, eos=1, pad=2, fim_prefix=3, fim_middle=4, fim_suffix=5)
    mix = Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()})
    loader = PackedLoader(shards, seq_len, micro_batch, mix, cfg, special, seed=0)
    loader.next_batch()  # warm the page cache and the first chunk
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loader.next_batch()
        n += 1
    dt = time.perf_counter() - t0
    return n * seq_len * micro_batch / dt, loader.packing_efficiency


def measure_ranks(shards, seq_len: int, micro_batch: int, worlds: list[int], seconds: float) -> None:
    special = SpecialIds(bos=0, eos=1, pad=2)
    mix = Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()})
    print(f"{'world':>5s} {'own only ms/batch':>18s} {'pack all, keep 1':>17s} {'speed-up':>9s} {'read/served':>12s}")
    for world in worlds:
        times = {}
        for mode in ("own", "all"):
            own = mode == "own" and world > 1
            loader = PackedLoader(shards, seq_len, micro_batch, mix, LoaderConfig(), special, seed=0,
                                  rank=0, world_size=world if own else 1)
            per = 1 if own else world  # next_batch calls per micro-batch this rank trains on
            for _ in range(per):
                loader.next_batch()  # warm the page cache
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for _ in range(per):
                    loader.next_batch()
                n += 1
            times[mode] = (time.perf_counter() - t0) / n
            if mode == "own":
                served = sum(s.tokens_served for s in loader.streams.values())
                ratio = loader.tokens_read / served * world
        print(f"{world:5d} {times['own'] * 1e3:18.2f} {times['all'] * 1e3:17.2f} {times['all'] / times['own']:8.2f}x "
              f"{ratio:11.2f}x")


def measure_nanogpt(shards, seq_len: int, micro_batch: int, seconds: float) -> float:
    """Baseline: nanoGPT's get_batch (random windows of one flat memmap; no documents, no mixture)."""
    data = shards["web"].shards[0].tokens
    rng = np.random.default_rng(0)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ix = rng.integers(0, len(data) - seq_len - 1, size=micro_batch)
        torch.stack([torch.from_numpy(data[i:i + seq_len].astype(np.int64)) for i in ix])
        torch.stack([torch.from_numpy(data[i + 1:i + 1 + seq_len].astype(np.int64)) for i in ix])
        n += 1
    return n * seq_len * micro_batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data, 1 s per setting")
    ap.add_argument("--tokens", type=int, default=0, help="tokens per domain (default 40M, quick 4M)")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--ranks", default="", help="comma-separated world sizes: per-rank data comparison only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_tokens = args.tokens or (4_000_000 if args.quick else 40_000_000)
    seconds = 1.0 if args.quick else 3.0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shards = {d: write_domain(Path(tmp), d, n_tokens, i) for i, d in enumerate(("web", "code"))}
        print(f"wrote 2 domains x {n_tokens / 1e6:.0f}M tokens in {time.perf_counter() - t0:.1f}s; "
              f"seq_len={args.seq_len} micro_batch={args.micro_batch}, 1 thread")
        if args.ranks:
            measure_ranks(shards, args.seq_len, args.micro_batch, [int(w) for w in args.ranks.split(",")], seconds)
            return
        settings = {
            "packed, doc mask, lineage": LoaderConfig(),
            "packed, doc mask, no lineage": LoaderConfig(lineage=False),
            "packed, no doc mask": LoaderConfig(doc_mask=False, lineage=False),
            "packed + FIM 0.5 on code": LoaderConfig(fim=FIMConfig(rate=0.5, domains=["code"])),
            "padded (no packing)": LoaderConfig(pack=False),
        }
        base = measure_nanogpt(shards, args.seq_len, args.micro_batch, seconds)
        print(f"{'setting':34s} {'tokens/s':>10s} {'vs nanoGPT':>11s} {'vs 20M goal':>12s} {'non-pad':>8s}")
        print(f"{'nanoGPT get_batch (baseline)':34s} {base / 1e6:9.1f}M {1.0:10.2f}x {base / GOAL:11.2f}x {1.0:8.3f}")
        for name, cfg in settings.items():
            tps, eff = measure(shards, cfg, args.seq_len, args.micro_batch, seconds)
            print(f"{name:34s} {tps / 1e6:9.1f}M {tps / base:10.2f}x {tps / GOAL:11.2f}x {eff:8.3f}")


if __name__ == "__main__":
    main()
