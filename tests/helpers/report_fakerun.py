"""Small, realistic run directories for report tests, written from a seeded generator.

The numbers follow the shapes real runs produce (a power-law loss with noise, warmup + cosine LR, a
spike and a rewind, an anneal stage with a mixture shift, eval rows every 20 steps, MoE loads), and the
files follow docs/architecture.md and the producers' writers (eval/needle.json as NeedleResult.to_dict,
eval/samples.json as make_samples rows, tokenizer/stats.json as tokenizer_stats).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pretrain.config import resolve, save
from pretrain.data.loader_config import MixturePoint
from pretrain.data.record import write_jsonl

DOMAINS = ("code", "docs", "literature")
FIXTURES = Path(__file__).parents[1] / "report" / "fixtures"
ALL_PARTS = ("config", "metrics", "curated", "tokenizer", "tokens", "heldout", "samples", "needle", "audits",
             "scaling", "moe")


def _png(path: Path) -> None:
    """A small real PNG (a producer's plot) for eval/ and scaling/."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_title(path.stem)
    fig.savefig(path, format="png", dpi=60)


def metrics_rows(steps: int = 120, seed: int = 0, moe: bool = True, lr: float = 3e-3) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    anneal_at = int(steps * 0.8)
    # Events as the trainer writes them: a string detail plus extra fields.
    rows.append({"type": "event", "step": 0, "tokens": 0, "event": "start",
                 "detail": f"world=1 mode=none device=cpu precision=fp32 params=131,392 total_steps={steps}",
                 "peak_flops": 9.1e10, "peak_source": "measured fp32 matmul (cached)", "fp32_modules": 0})
    rows.append({"type": "event", "step": 0, "tokens": 0, "event": "stage_start", "stage": "bulk",
                 "detail": "bulk seq_len=64 micro_batch=4 steps=96"})
    for step in range(1, steps + 1):
        stage = "bulk" if step < anneal_at else "anneal"
        if step == anneal_at:
            rows.append({"type": "event", "step": step, "event": "stage_start", "stage": "anneal",
                         "detail": "anneal seq_len=64 micro_batch=4 steps=24 mixture={'docs': 0.5}"})
        warm = min(1.0, step / 10)
        lr_t = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        base = 2.1 + 4.2 * (1 + step * (lr / 3e-3) ** 0.5 / 15) ** -0.7  # a lower lr learns more slowly
        loss = base + rng.normal(0, 0.05) + (1.5 if step == 57 else 0.0)
        row = {"type": "train", "step": step, "tokens": step * 1024, "loss": round(loss, 4), "lr": lr_t,
               "grad_norm": float(abs(rng.normal(1.5 * (1 + step / 20) ** -0.5, 0.1)) + (8.0 if step == 57 else 0)),
               "tokens_per_s": float(12000 + rng.normal(0, 400)), "mfu": float(0.031 + rng.normal(0, 0.002)),
               "time_s": round(step * 0.085, 3), "stage": stage, "mem_mb": 410.0 + step * 0.1,
               "total_steps": steps, "seq_len": 64, "batch": 16, "step_time_s": 0.085}
        for i, d in enumerate(DOMAINS):
            row[f"loss/{d}"] = round(base + 0.3 * (i - 1) + rng.normal(0, 0.08), 4)
        w = (0.5, 0.3, 0.2) if stage == "bulk" else (0.3, 0.5, 0.2)
        for d, wi in zip(DOMAINS, w, strict=True):
            row[f"mix/{d}"] = wi
        if moe:
            loads = rng.dirichlet(np.ones(8) * (2 + step / 10))
            for e, v in enumerate(loads):
                row[f"moe/load/e{e}"] = float(v)
            row["moe/max_violation"] = float(loads.max() * 8 - 1)
            row["aux_loss"] = float(0.01 * (1 + loads.max()))
            row["mtp_loss"] = float(0.3 * (base + 0.4))
        rows.append(row)
        if step == 57:
            rows.append({"type": "event", "step": 57, "event": "spike",
                         "detail": f"step 57: loss {loss:.3f} above band 3.1; 16 documents in the step",
                         "lineage": [["tokens/train/code/shard_00000.bin", i] for i in range(16)]})
            rows.append({"type": "event", "step": 57, "event": "rewind",
                         "detail": "to step_00000050 after a spike at step 57; its batches will be skipped"})
            rows.append({"type": "event", "step": 51, "event": "skip", "detail": {"batches": 1, "documents": 16}})
        if step % 20 == 0 or step == steps:
            ev = {"type": "eval", "step": step, "tokens": step * 1024, "stage": stage, "val_loss": round(base + 0.05, 4),
                  "val_bpb": round((base + 0.05) / math.log(2) / 3.2, 4)}
            for i, d in enumerate(DOMAINS):
                ev[f"val_loss/{d}"] = round(base + 0.05 + 0.3 * (i - 1), 4)
                ev[f"val_bpb/{d}"] = round((base + 0.05 + 0.3 * (i - 1)) / math.log(2) / (3.6 - 0.4 * i), 4)
            rows.append(ev)
            if step == steps:  # the anneal gate's second evaluation at the same step, tagged by model
                rows.append({**ev, "model": "short_context", "val_loss": ev["val_loss"] + 0.02})
        if step % 50 == 0:
            rows.append({"type": "event", "step": step, "event": "checkpoint", "detail": f"step_{step:08d}"})
    return rows


def write_run(root: Path, parts: tuple[str, ...] = ALL_PARTS, steps: int = 120, seed: int = 0,
              name: str = "tiny", lr: float = 3e-3) -> Path:
    """Write a run directory with the given parts; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if "config" in parts:
        cfg = resolve("tiny", [f"name={name}", f"train.max_steps={steps}", f"train.lr={lr}"])
        cfg.data.mixture.schedule = [MixturePoint(0.0, {"code": 0.5, "docs": 0.3, "literature": 0.2}),
                                     MixturePoint(1.0, {"code": 0.3, "docs": 0.5, "literature": 0.2})]
        save(cfg, root / "config.toml")
    if "metrics" in parts:
        rows = metrics_rows(steps, seed, moe="moe" in parts, lr=lr)
        (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if "curated" in parts:
        cur = root / "curated"
        cur.mkdir(parents=True, exist_ok=True)
        # Recorded from `pretrain quickstart --preset tiny` (the real curate stats.json format).
        (cur / "stats.json").write_text((FIXTURES / "curated_stats.json").read_text())
        removed = [{"id": f"{i:016x}", "text": f"removed text number {i} <b>not html</b> " * 3,
                    "source": f"corpus/code.jsonl.zst:{i}", "domain": DOMAINS[i % 3], "lang": "en",
                    "meta": {"removed_by": step, "reason": reason}}
                   for i, (step, reason) in enumerate([("exact_dedup", "duplicate"), ("length", "too_short"),
                                                       ("minhash_dedup", "duplicate")] * 3)]
        write_jsonl(cur / "removed" / "part_00000.jsonl.zst", removed)
        write_jsonl(cur / "quarantine" / "part_00000.jsonl.zst",
                    [{"id": "q1", "text": "\ufffd\ufffd", "source": "in/bad.jsonl:7", "domain": "docs",
                      "meta": {"reason": "not valid UTF-8"}}])
    if "tokenizer" in parts:
        tok = {"tokenizer": "tokenizer/tokenizer.json", "vocab_size": 512, "hash": "ab" * 32, "val_fraction": 0.05,
               "domains": {d: {"documents": 30, "bytes": 90_000 + i, "tokens": int(90_000 / (3.6 - 0.4 * i)),
                               "bytes_per_token": 3.6 - 0.4 * i} for i, d in enumerate(DOMAINS)},
               "overall": {"documents": 90, "bytes": 270_003, "tokens": 84_000, "bytes_per_token": 3.21}}
        (root / "tokenizer").mkdir(parents=True, exist_ok=True)
        (root / "tokenizer" / "stats.json").write_text(json.dumps(tok))
    if "tokens" in parts:
        (root / "tokens").mkdir(parents=True, exist_ok=True)
        (root / "tokens" / "stats.json").write_text(json.dumps(  # the format data/tokenize.py writes
            {"tokenizer_hash": "ab" * 32, "vocab_size": 512, "val_fraction": 0.05, "documents": 789,
             "tokens": 78_900, "bytes": 252_480, "seconds": 1.5, "mb_per_s": 0.17, "workers": 1,
             "splits": {"train": {d: {"documents": 250, "tokens": 25_000, "bytes": 80_000, "dtype": "uint16"}
                                  for d in DOMAINS},
                        "val": {d: {"documents": 13, "tokens": 1_300, "bytes": 4_160, "dtype": "uint16"}
                                for d in DOMAINS}}}))
    ev = root / "eval"
    if "heldout" in parts:
        ev.mkdir(parents=True, exist_ok=True)
        doms = {d: {"loss": 2.3 + 0.3 * i, "ppl": math.exp(2.3 + 0.3 * i), "bits_per_byte": 1.1 + 0.2 * i,
                    "tokens": 4096, "bytes": 13_000, "docs": 10, "nats": 9420.0} for i, d in enumerate(DOMAINS)}
        held = {"domains": doms, "overall": {"loss": 2.6, "ppl": 13.5, "bits_per_byte": 1.3, "tokens": 12288,
                                             "bytes": 39_000, "docs": 30, "nats": 31948.0},
                "macro_bits_per_byte": 1.3, "seq_len": 64, "bos": True,
                "unigram": {"domains": {d: {"loss": 5.0, "ppl": 148.4, "bits_per_byte": 2.2 + 0.1 * i, "tokens": 4096,
                                            "bytes": 13_000, "docs": 10, "nats": 20480.0}
                                        for i, d in enumerate(DOMAINS)},
                            "overall": {"bits_per_byte": 2.3}, "train_tokens": 75_000, "vocab_size": 512}}
        (ev / "heldout.json").write_text(json.dumps(held))
    if "samples" in parts:
        ev.mkdir(parents=True, exist_ok=True)
        (ev / "samples.json").write_text(json.dumps(
            [{"domain": d, "prompt": p, "greedy": "the the <script>alert(1)</script> the", "sampled": "and so it goes"}
             for d, p in zip(DOMAINS, ("def ", "Return the ", "KING.\n"), strict=True)]))
    if "needle" in parts:
        ev.mkdir(parents=True, exist_ok=True)
        lengths, depths = [64, 128, 256], [0.0, 0.25, 0.5, 0.75, 1.0]
        acc = [[max(0.0, 1.0 - 0.2 * i - 0.1 * j) for j in range(len(depths))] for i in range(len(lengths))]
        needle = {"lengths": lengths, "depths": depths, "accuracy": acc, "logprob": acc,
                  "overall_accuracy": float(np.mean(acc)), "pass_threshold": 0.5, "passed": True,
                  "chance_accuracy": 1e-4,
                  "trials": [{"length": L, "depth": d, "exact": True, "logprob": -1.0} for L in lengths for d in depths]}
        (ev / "needle.json").write_text(json.dumps(needle))
        _png(ev / "needle.png")
    if "audits" in parts:
        ev.mkdir(parents=True, exist_ok=True)
        (ev / "contamination.json").write_text(json.dumps(
            {"ngram": 13, "benchmarks": {"hellaswag": {"contaminated": 0, "checked": 200}}, "contaminated_share": 0.0}))
        (ev / "memorization.json").write_text(json.dumps({"prefix_tokens": 32, "exact_match_rate": 0.012}))
        _png(ev / "loss_by_position.png")
    if "scaling" in parts:
        sc = root / "scaling"
        sc.mkdir(parents=True, exist_ok=True)
        (sc / "fit.json").write_text(json.dumps({"law": "chinchilla", "E": 1.69, "A": 406.4, "B": 410.7,
                                                 "alpha": 0.34, "beta": 0.28}))
        _png(sc / "isoflop.png")
    return root
