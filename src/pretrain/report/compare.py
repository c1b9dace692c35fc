"""``compare_runs``: several runs overlaid on one page, the way ablations are read.

Curves share an x axis in tokens (runs with different batch sizes line up by data seen, not by step),
a table puts the final figures side by side, and the config differences say what was ablated.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np

from pretrain.report import plots
from pretrain.report.build import write_html
from pretrain.report.html import (
    ImageSink,
    Page,
    Section,
    esc,
    flatten,
    fmt_duration,
    note,
    render_page,
    table,
)
from pretrain.report.plots import Panel, Series
from pretrain.report.rundata import RunData, load_run
from pretrain.report.sections import bits_per_byte_of, heldout_parts, param_count


def _unique_names(runs: list[RunData]) -> list[str]:
    """Run names, with the directory added where two runs share a name (and a number if that collides too)."""
    counts = Counter(r.name for r in runs)
    names = [f"{r.name} ({r.root.name})" if counts[r.name] > 1 and r.root.name != r.name else r.name for r in runs]
    seen: Counter[str] = Counter()
    out = []
    for n in names:
        seen[n] += 1
        out.append(n if names.count(n) == 1 else f"{n} #{seen[n]}")
    return out


def _x_key(runs: list[RunData]) -> tuple[str, str]:
    """Tokens when every run logs them (fair across batch sizes), else steps."""
    if all(r.metrics.keys("train", "loss") and len(r.metrics.series("train", "tokens")[0]) for r in runs):
        return "tokens", "tokens seen"
    return "step", "optimizer step"


def _overlay(runs, names, kind, key, x, title, ylabel, xlabel, style="line", logy=None) -> bytes | None:
    series = [Series(n, *r.metrics.series(kind, key, x=x), style=style, color=plots.color(i))
              for i, (r, n) in enumerate(zip(runs, names, strict=True))]
    if sum(1 for s in series if len(s.x)) == 0:
        return None
    return plots.line_chart(Panel(title, series, ylabel, xlabel=xlabel, logy=logy))


def _summary_rows(runs: list[RunData], names: list[str]) -> list[list]:
    rows = []
    for r, n in zip(runs, names, strict=True):
        m = r.metrics
        tps = m.series("train", "tokens_per_s")[1]
        mfu = m.last("train", "mfu")
        _, overall, _ = heldout_parts(r.heldout) if isinstance(r.heldout, dict) else ({}, {}, {})
        bpb = bits_per_byte_of(overall) if overall else m.last("eval", "val_bpb")
        rows.append([n, param_count(r) or "", m.last("train", "step") or "", m.last("train", "tokens") or "",
                     fmt_duration(m.last("train", "time_s")), m.last("train", "loss") or "",
                     m.last("eval", "val_loss") or "", bpb if bpb is not None else "",
                     float(np.median(tps[-20:])) if len(tps) else "",
                     f"{100 * mfu:.1f}%" if mfu is not None and mfu <= 1 else (mfu or "")])
    return rows


def _config_diff(runs: list[RunData], names: list[str]) -> str:
    flats = [dict(flatten(r.config, limit=2000)) for r in runs]
    keys = sorted({k for f in flats for k in f})
    diff = [k for k in keys if k != "name" and len({repr(f.get(k)) for f in flats}) > 1]
    if not diff:
        return note("The configs are identical (apart from the run name)." if any(flats) else "No config.toml found.")
    rows = [[k, *[f.get(k, "-") for f in flats]] for k in diff]
    return table(["config field", *names], rows, numeric=False)


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path, embed_images: bool = True) -> Path:
    """Overlay two or more runs in ``<out_dir>/index.html`` and return its path."""
    if len(run_dirs) < 2:
        raise ValueError(f"compare needs at least two run directories (got {len(run_dirs)})")
    runs = [load_run(d) for d in run_dirs]
    names = _unique_names(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sink = ImageSink(out, embed=embed_images)
    x, xlabel = _x_key(runs)
    sections = [Section("runs", "Runs", table(
        ["run", "parameters", "steps", "tokens", "time", "train loss", "val loss", "bits/byte", "tokens/s", "MFU"],
        _summary_rows(runs, names)) + table(["run", "directory"], [[n, str(r.root)] for r, n in zip(runs, names,
                                                                                                  strict=True)],
                                            numeric=False))]
    sections.append(Section("config", "Config differences", _config_diff(runs, names),
                            subtitle="Only fields whose values differ between runs."))

    loss_imgs = []
    for key, kind, title, ylabel, style in (
        ("loss", "train", "Training loss", "cross-entropy (nats / token)", "noisy"),
        ("val_loss", "eval", "Validation loss", "cross-entropy (nats / token)", "points"),
        ("val_bpb", "eval", "Validation bits per byte", "bits / byte", "points"),
    ):
        png = _overlay(runs, names, kind, key, x, title, ylabel, xlabel, style)
        if png:
            loss_imgs.append(sink.img(f"compare_{key}", png, title))
    if loss_imgs:
        sections.append(Section("loss", "Loss", "".join(loss_imgs), images=len(loss_imgs),
                                subtitle=f"x axis: {xlabel}."))

    held = [(heldout_parts(r.heldout)[0] if isinstance(r.heldout, dict) else {}) for r in runs]
    domains = sorted({d for h in held for d in h})
    if domains:
        groups = {n: [bits_per_byte_of(h.get(d)) if d in h else None for d in domains] for n, h in zip(names, held, strict=True)}
        png = plots.grouped_bars(domains, groups, "Held-out bits per byte per domain (lower is better)", "bits / byte")
        if png:
            sections.append(Section("heldout", "Held-out evaluation", sink.img("compare_heldout", png,
                                                                                "held-out bits per byte"), images=1))

    opt_imgs = []
    for key, title, ylabel, logy in (("lr", "Learning rate", "learning rate", False),
                                     ("grad_norm", "Gradient norm", "global L2 norm", None),
                                     ("tokens_per_s", "Throughput", "tokens / second", False)):
        png = _overlay(runs, names, "train", key, "step", title, ylabel, "optimizer step",
                       "noisy" if key == "grad_norm" else "line", logy)
        if png:
            opt_imgs.append(sink.img(f"compare_{key}", png, title))
    if opt_imgs:
        sections.append(Section("optimisation", "Optimisation and throughput", "".join(opt_imgs), images=len(opt_imgs)))

    links = "".join(f"<li>{esc(n)}: <code>{esc(r.root / 'report' / 'index.html')}</code></li>"
                    for r, n in zip(runs, names, strict=True) if (r.root / "report" / "index.html").is_file())
    if links:
        sections[0].body += f"<p class='muted'>Single-run reports:</p><ul>{links}</ul>"
    warnings = [f"{n}: {w}" for r, n in zip(runs, names, strict=True) for w in r.warnings]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = Page("Run comparison: " + " vs ".join(names), f"{len(runs)} runs · generated {stamp}", sections, warnings)
    path = out / "index.html"
    write_html(path, render_page(page))
    return path
