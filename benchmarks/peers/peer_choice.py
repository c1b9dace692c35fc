"""Which nanochat configuration and budgets a comparison runs: the sweep's best (pooled over sweeps), the
budgets and grid values given on the command line, and the vocabulary both sides share. Imported by
nanochat_speedrun.py and nanochat_sweep.py (benchmarks/ is not a package)."""

from __future__ import annotations

import json
from pathlib import Path


def best_of(runs: list[dict]) -> dict:
    """The configuration with the lowest mean bits per character over its seeds."""
    by_label: dict[str, list[dict]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    scored = [{"label": k, "flags": v[0]["flags"], "runs": len(v),
               "mean_bits_per_char": round(sum(r["val_bits_per_char"] for r in v) / len(v), 4)}
              for k, v in by_label.items()]
    if not scored:
        raise SystemExit("the sweep recorded no run")
    return min(scored, key=lambda s: s["mean_bits_per_char"])


def best_flags(sweep_jsons: Path | list[Path]) -> str:
    """The flags of the best configuration (lowest mean bits per character) the sweeps recorded. Several
    sweep files (a first grid, then a follow-up around its winner) are pooled: their runs are scored
    together, so a configuration run in both counts every seed."""
    paths = [sweep_jsons] if isinstance(sweep_jsons, (str, Path)) else list(sweep_jsons)
    runs: list[dict] = []
    bests: list[dict] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            bests.append(data["best"])
            runs.extend(data.get("runs", []))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"--best-from {path}: not a sweep result of nanochat_sweep.py ({exc})") from None
    best = best_of(runs) if runs else min(bests, key=lambda b: b["mean_bits_per_char"])
    return str(best["flags"])


def shared_vocab(overrides: list[str], default: int = 1024) -> int:
    """The vocabulary both sides train: pretrain's ``tokenizer.vocab_size=`` override if the run gives one
    (the last wins, as in the config), else the quickstart's. A vocabulary is part of the recipe being
    compared, so nanochat's tokenizer gets the same size rather than staying at 1024."""
    vocab = default
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "tokenizer.vocab_size":
            try:
                vocab = int(value)
            except ValueError:
                raise SystemExit(f"tokenizer.vocab_size={value!r}: not an integer") from None
    return vocab


def positive_list(text: str, kind, flag: str) -> list:
    """A comma-separated list of positive numbers for ``flag``; one line naming the flag otherwise."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{flag}: {text!r} is not a comma-separated list of numbers") from None
    if not values or any(v <= 0 for v in values):
        raise SystemExit(f"{flag}: needs one or more positive values (got {text!r})")
    return values


def parse_minutes(text: str) -> list[float]:
    """``--minutes``: one budget or several (``4,8``), each compared on every seed in one invocation."""
    return positive_list(text, float, "--minutes")
