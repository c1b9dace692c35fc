"""Ablations: train every combination of ``--vary`` values with K seeds and compare final per-domain losses.

A difference between two variants means something only when it exceeds seed-to-seed noise, so each
variant runs with K seeds (``train.seed`` = base seed + k, which changes both the initialisation and the
data order) and the table reports, per domain, mean and standard deviation over seeds, the difference
from the first (baseline) variant, its standard error sqrt(s1^2/n1 + s2^2/n2), and Welch's t-test
p-value. ``exceeds_noise`` is true when |difference| > 2 standard errors (about 95% under normality);
with one seed there is no noise estimate and it is left empty.

The DeepSeek-V3 questions are one command each (docs/scaling.md lists them), e.g.
``pretrain ablate base.toml --vary model.mtp.depth=0,1 --seeds 3``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.configlib import check, to_dict
from pretrain.scaling.runner import TrainFn, run_or_load


@dataclass
class AblateConfig:
    base: str = "tiny"
    """Preset name or config file every variant starts from."""
    overrides: list[str] = field(default_factory=list)
    """Dotted overrides applied to every variant (e.g. the shared data.tokens and tokenizer.path)."""
    vary: list[str] = field(default_factory=list)
    """Axes 'key=v1,v2,...'; every combination of the axes' values is a variant (the first is the baseline)."""
    seeds: int = 3
    """Runs per variant, with train.seed = seed + 0..seeds-1."""
    seed: int = 0
    """First seed."""

    def validate(self) -> None:
        check(bool(self.vary), "vary", "give at least one --vary key=v1,v2")
        for v in self.vary:
            parse_vary(v)
        check(self.seeds >= 1, "seeds", f"must be >= 1 (got {self.seeds})")


def split_values(text: str) -> list[str]:
    """Split 'a,b,[1,2],"x,y"' at top-level commas (brackets and quotes protect theirs)."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_vary(text: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    vals = split_values(values) if sep else []
    if not key.strip() or not vals or any(not v for v in vals):
        raise ValueError(f"config field 'vary': {text!r} must look like key=v1,v2 (no empty values)")
    return key.strip(), vals


def variants(ac: AblateConfig) -> list[list[str]]:
    """Every combination of the axes' values, as lists of 'key=value' overrides, baseline first."""
    axes = [[f"{k}={v}" for v in vals] for k, vals in (parse_vary(x) for x in ac.vary)]
    return [list(combo) for combo in itertools.product(*axes)]


def variant_label(overrides: list[str]) -> str:
    """'model.mtp.depth=1' -> 'mtp.depth=1': the section prefix is dropped when unambiguous."""
    return ", ".join(o.split(".", 1)[1] if o.count(".") >= 2 else o for o in overrides)


def _dir_name(overrides: list[str], seed: int) -> str:
    slug = "_".join(re.sub(r"[^A-Za-z0-9.=-]+", "-", o).replace("=", "-") for o in overrides)
    return f"{slug[:120]}_seed{seed}"


@dataclass
class AblationRow:
    variant: str
    domain: str
    mean: float
    std: float
    n: int
    delta: float
    """mean - baseline mean (0 for the baseline)."""
    stderr: float
    """Standard error of delta (nan with fewer than 2 seeds on either side)."""
    p_value: float
    """Welch's t-test p-value against the baseline (nan when undefined)."""
    exceeds_noise: bool | None
    """|delta| > 2 stderr; None when there is no noise estimate."""


def _stats(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else float("nan")
    return mean, math.sqrt(var) if var == var else float("nan")


def compare(results: dict[str, list[dict]]) -> list[AblationRow]:
    """Per variant and domain (``overall`` = val_loss): mean, std, and the comparison with the first variant."""
    from scipy.stats import ttest_ind

    names = list(results)
    domains = ["overall"] + sorted({k.split("/", 1)[1] for rs in results.values() for r in rs
                                    for k in r if k.startswith("val_loss/")})

    def values(name: str, domain: str) -> list[float]:
        key = "val_loss" if domain == "overall" else f"val_loss/{domain}"
        return [float(r[key]) for r in results[name] if key in r]

    rows = []
    for name in names:
        for domain in domains:
            xs, base = values(name, domain), values(names[0], domain)
            if not xs:
                continue
            mean, std = _stats(xs)
            bmean, bstd = _stats(base) if base else (float("nan"), float("nan"))
            delta = mean - bmean
            if len(xs) > 1 and len(base) > 1 and name != names[0]:
                se = math.sqrt(std**2 / len(xs) + bstd**2 / len(base))
                p = float(ttest_ind(xs, base, equal_var=False).pvalue) if se > 0 else float("nan")
                exceeds = bool(abs(delta) > 2 * se)
            else:
                se, p, exceeds = float("nan"), float("nan"), None
            rows.append(AblationRow(name, domain, mean, std, len(xs), delta, se, p, exceeds))
    return rows


def run_ablation(
    ac: AblateConfig,
    out_dir: str | Path,
    train_fn: TrainFn | None = None,
    on_run: Callable[[str, int, str], None] | None = None,
) -> dict:
    """Run (or read back) every variant x seed under ``out_dir/runs``; write ablation.json/.csv/.png."""
    from pretrain.config import resolve
    from pretrain.configlib import validate
    from pretrain.scaling.plots import plot_ablation
    from pretrain.scaling.points import write_points

    validate(ac)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = [(v, ac.seed + k) for v in variants(ac) for k in range(ac.seeds)]
    for v, seed in plan:  # resolve everything first: a typo fails before hours of training
        resolve(ac.base, [*ac.overrides, *v, f"train.seed={seed}"])
    (out / "ablation_config.json").write_text(json.dumps(to_dict(ac), indent=2) + "\n", encoding="utf-8")
    results: dict[str, list[dict]] = {}
    for v, seed in plan:
        label = variant_label(v)
        dir_name = _dir_name(v, seed)
        overrides = [*ac.overrides, *v, f"train.seed={seed}", f"name={json.dumps(dir_name)}"]
        run_dir = out / "runs" / dir_name
        status = "done" if (run_dir / "result.json").is_file() else "run"
        if on_run:
            on_run(label, seed, status)
        row = run_or_load(resolve(ac.base, overrides), run_dir, {"variant": label, "seed": seed,
                                                                  "overrides": overrides}, train_fn,
                          allow_time_limit=True)
        results.setdefault(label, []).append(row)
    table = [r.__dict__ for r in compare(results)]
    write_points(out / "ablation.csv", table)
    plot = plot_ablation(table, out / "ablation.png")
    report = {"config": to_dict(ac), "table": table, "plot": str(plot),
              "runs": {k: [{"seed": r["seed"], "val_loss": r["val_loss"]} for r in rs] for k, rs in results.items()}}
    (out / "ablation.json").write_text(json.dumps(json_safe(report), indent=2) + "\n", encoding="utf-8")
    return report


def json_safe(obj):
    """NaN (undefined statistics) as JSON null, so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj
