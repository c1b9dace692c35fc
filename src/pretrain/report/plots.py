"""The report's chart kinds, drawn with matplotlib and returned as PNG bytes.

Figures are built from ``matplotlib.figure.Figure`` directly (no pyplot): no global backend state, no
windows, safe inside a training process or a test run. Every chart has a title, axis labels with units,
and a log axis where values span orders of magnitude. Noisy training curves are drawn raw and faint with
an exponential moving average on top, which is how people read them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
           "#4b5563", "#65a30d", "#7c3aed", "#0d9488"]
EVENT_STYLE = {  # event name -> (colour, legend label)
    "spike": ("#dc2626", "loss spike"),
    "rewind": ("#9333ea", "rewind"),
    "skip": ("#ea580c", "skipped batch"),
}
DPI = 100


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    style: str = "line"
    """line | noisy (raw faint + moving average) | points (markers joined by a thin line)."""
    color: str | None = None
    linestyle: str = "-"


@dataclass
class Panel:
    title: str
    series: list[Series]
    ylabel: str = ""
    xlabel: str = "optimizer step"
    logy: bool | None = None
    """True/False, or None = log when positive values span more than 20x."""
    hlines: list[tuple[float, str]] = field(default_factory=list)
    """Horizontal reference lines (value, label), e.g. the gradient clipping threshold."""
    percent: bool = False


def to_png(fig: Figure, tight_bbox: bool = False) -> bytes:
    """PNG bytes. Figures are laid out with tight_layout already; ``tight_bbox`` (an extra full draw, about
    25% slower) is only for legends placed outside the axes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight_bbox else None, facecolor="white")
    return buf.getvalue()


def ema(y: np.ndarray, span: int | None = None) -> np.ndarray:
    """Bias-corrected exponential moving average (TensorBoard-style smoothing that starts at y[0])."""
    n = len(y)
    if n < 3:
        return y.astype(float)
    span = span or max(3, n // 30)
    alpha = 2.0 / (span + 1.0)
    out = np.empty(n)
    acc, weight = 0.0, 0.0
    for i, v in enumerate(y):
        acc = (1 - alpha) * acc + alpha * v
        weight = (1 - alpha) * weight + alpha
        out[i] = acc / weight
    return out


def _want_log(values: Sequence[np.ndarray], logy: bool | None, ratio: float = 20.0) -> bool:
    """Log scale when all values are positive and span more than ``ratio`` (or as forced)."""
    if logy is not None:
        return logy
    arr = np.concatenate([np.asarray(v, float) for v in values if len(v)]) if values else np.array([])
    if arr.size == 0 or np.any(arr <= 0):
        return False
    return float(arr.max() / arr.min()) > ratio


def _draw(ax, panel: Panel, stages=None, events=None) -> bool:
    """Draw one panel; False when it has nothing to show."""
    drawn = False
    for i, s in enumerate(panel.series):
        if len(s.x) == 0:
            continue
        c = s.color or color(i)
        y = s.y * 100.0 if panel.percent else s.y
        if s.style == "noisy" and len(s.x) >= 30:  # fewer points read fine raw
            ax.plot(s.x, y, color=c, alpha=0.25, lw=0.8)
            ax.plot(s.x, ema(y), color=c, lw=1.8, ls=s.linestyle, label=f"{s.label} (smoothed)")
        elif s.style == "points" or len(s.x) < 3:
            ax.plot(s.x, y, color=c, lw=1.0, ls=s.linestyle, marker="o", ms=3.5, label=s.label)
        else:
            ax.plot(s.x, y, color=c, lw=1.6, ls=s.linestyle, label=s.label)
        drawn = True
    if not drawn:
        return False
    for value, label in panel.hlines:
        ax.axhline(value, color="#6b7280", ls=":", lw=1.2, label=label)
    if _want_log([s.y for s in panel.series], panel.logy):
        ax.set_yscale("log")
    for step, name in stages or []:
        ax.axvline(step, color="#374151", ls="--", lw=1.0, alpha=0.7)
        ax.text(step, 0.98, f" {name}", transform=ax.get_xaxis_transform(), va="top", ha="left",
                fontsize=8, color="#374151", rotation=90)
    seen: set[str] = set()
    for step, kind in events or []:
        c, label = EVENT_STYLE.get(kind, ("#6b7280", kind))
        ax.axvline(step, color=c, lw=1.0, alpha=0.55, label=None if kind in seen else label)
        seen.add(kind)
    ax.set_title(panel.title, fontsize=11)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel + (" (%)" if panel.percent and "%" not in panel.ylabel else ""))
    ax.grid(True, alpha=0.3, which="both")
    if abs(ax.get_xlim()[1]) >= 1e4:
        ax.xaxis.set_major_formatter(EngFormatter())
    if len([s for s in panel.series if len(s.x)]) > 1 or panel.hlines or seen:
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return True


def _tokens_axis(ax, step_tokens: tuple[np.ndarray, np.ndarray]) -> None:
    """A secondary x axis on top in tokens, mapped from steps by interpolation."""
    steps, tokens = step_tokens
    # Linear extrapolation past both ends (np.interp clamps, which folds the axis margins onto one tick).
    lo = (tokens[1] - tokens[0]) / (steps[1] - steps[0])
    hi = (tokens[-1] - tokens[-2]) / (steps[-1] - steps[-2])

    def fwd(x):
        x = np.asarray(x, float)
        y = np.interp(x, steps, tokens)
        y = np.where(x < steps[0], tokens[0] + (x - steps[0]) * lo, y)
        return np.where(x > steps[-1], tokens[-1] + (x - steps[-1]) * hi, y)

    def inv(t):
        t = np.asarray(t, float)
        x = np.interp(t, tokens, steps)
        x = np.where(t < tokens[0], steps[0] + (t - tokens[0]) / max(lo, 1e-12), x)
        return np.where(t > tokens[-1], steps[-1] + (t - tokens[-1]) / max(hi, 1e-12), x)

    top = ax.secondary_xaxis("top", functions=(fwd, inv))
    top.set_xlabel("tokens seen", fontsize=9)
    top.xaxis.set_major_formatter(EngFormatter())
    top.tick_params(labelsize=8)


def line_chart(panel: Panel, stages=None, events=None, step_tokens=None, size=(9.0, 4.0)) -> bytes | None:
    """One panel of lines with optional stage boundaries, event markers and a tokens axis."""
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    if not _draw(ax, panel, stages, events):
        return None
    if step_tokens is not None:
        _tokens_axis(ax, step_tokens)
    fig.tight_layout()
    return to_png(fig)


def panel_grid(panels: list[Panel], ncols: int = 2, stages=None, panel_size=(5.0, 3.2)) -> bytes | None:
    """Several small panels in a grid (learning rate, grad norm, throughput, ...)."""
    panels = [p for p in panels if any(len(s.x) for s in p.series)]
    if not panels:
        return None
    ncols = min(ncols, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    for i, p in enumerate(panels):
        _draw(fig.add_subplot(nrows, ncols, i + 1), p, stages)
    fig.tight_layout()
    return to_png(fig)


def stack_chart(x: np.ndarray, parts: dict[str, np.ndarray], title: str, xlabel: str, ylabel: str,
                stages=None) -> bytes | None:
    """Stacked areas (mixture weights over training)."""
    if len(x) == 0 or not parts:
        return None
    fig = Figure(figsize=(9.0, 3.6))
    ax = fig.add_subplot()
    labels = list(parts)
    ax.stackplot(x, *[parts[k] for k in labels], labels=labels, colors=[color(i) for i in range(len(labels))],
                 alpha=0.85)
    for step, name in stages or []:
        ax.axvline(step, color="#111827", ls="--", lw=1.0)
        ax.text(step, 0.98, f" {name}", transform=ax.get_xaxis_transform(), va="top", fontsize=8, rotation=90)
    ax.set_xlim(float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1)
    ax.set_ylim(0, max(1.0, float(np.sum([parts[k] for k in labels], axis=0).max())))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return to_png(fig, tight_bbox=True)


def hbar_chart(labels: list[str], values: list[float], title: str, xlabel: str, logx: bool | None = None,
               colors: list[str] | None = None) -> bytes | None:
    """Horizontal bars with their values written at the end (removal reasons, bytes per token)."""
    if not labels:
        return None
    vals = np.asarray(values, float)
    fig = Figure(figsize=(9.0, max(1.8, 0.38 * len(labels) + 1.0)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    ax.barh(y, vals, color=colors or [color(0)] * len(labels), alpha=0.9)
    ax.set_yticks(y, labels, fontsize=9)
    if _want_log([vals], logx, ratio=1000.0):  # bars on a log axis mislead unless the range demands it
        ax.set_xscale("log")
    for yi, v in zip(y, vals, strict=True):
        ax.text(v, yi, f" {v:,.4g}", va="center", fontsize=8)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    ax.margins(x=0.12)
    fig.tight_layout()
    return to_png(fig)


def funnel_chart(labels: list[str], kept: list[float], removed: list[float], title: str,
                 xlabel: str) -> bytes | None:
    """One bar per step: the documents entering it, split into kept (blue) and removed (red), annotated
    with the removed count and share, so even a step that drops 0.1% is visible by its label."""
    if not labels:
        return None
    k, r = np.asarray(kept, float), np.asarray(removed, float)
    fig = Figure(figsize=(9.0, max(2.0, 0.36 * len(labels) + 1.2)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    ax.barh(y, k, color=color(0), alpha=0.9, label="kept")
    ax.barh(y, r, left=k, color=color(1), alpha=0.9, label="removed")
    for yi, ki, ri in zip(y, k, r, strict=True):
        total = ki + ri
        text = f" {total:,.0f}" + (f"  (-{ri:,.0f}, {100 * ri / total:.2g}%)" if ri and total else "")
        ax.text(total, yi, text, va="center", fontsize=8, color=color(1) if ri else "#374151")
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_title(title + " (blue: kept, red: removed)", fontsize=11)  # a legend box would cover bars
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, float((k + r).max()) * 1.3 or 1.0)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return to_png(fig)


def grouped_bars(categories: list[str], groups: dict[str, list[float]], title: str, ylabel: str,
                 stacked: bool = False) -> bytes | None:
    """Bars per category, one colour per group, side by side or stacked."""
    if not categories or not groups:
        return None
    fig = Figure(figsize=(max(6.0, 0.9 * len(categories) + 3.0), 3.8))
    ax = fig.add_subplot()
    x = np.arange(len(categories))
    width = 0.8 if stacked else 0.8 / len(groups)
    bottom = np.zeros(len(categories))
    for i, (name, vals) in enumerate(groups.items()):
        v = np.asarray([np.nan if val is None else val for val in vals], float)
        if stacked:
            ax.bar(x, np.nan_to_num(v), width, bottom=bottom, label=name, color=color(i))
            bottom += np.nan_to_num(v)
        else:
            bars = ax.bar(x - 0.4 + width * (i + 0.5), v, width, label=name, color=color(i))
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(x, categories, rotation=20 if len(categories) > 5 else 0, ha="right" if len(categories) > 5 else "center")
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.18)  # headroom so the legend never covers a bar
    ax.legend(fontsize=8, loc="upper left", ncol=min(len(groups), 4))
    fig.tight_layout()
    return to_png(fig)


def heatmap(matrix: np.ndarray, xlabels: list[str], ylabels: list[str], title: str, xlabel: str, ylabel: str,
            cbar_label: str, vmin: float | None = None, vmax: float | None = None, annotate: bool = True,
            cmap: str = "RdYlGn") -> bytes | None:
    """A labelled heatmap (needle retrieval by depth and context length, expert loads over steps)."""
    m = np.asarray(matrix, float)
    if m.size == 0:
        return None
    fig = Figure(figsize=(min(12.0, max(5.0, 0.7 * m.shape[1] + 3.0)), min(8.0, max(2.6, 0.42 * m.shape[0] + 1.6))))
    ax = fig.add_subplot()
    im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    step_x = max(1, len(xlabels) // 16)
    ax.set_xticks(range(0, len(xlabels), step_x), xlabels[::step_x], fontsize=8, rotation=30 if len(xlabels) > 8 else 0)
    step_y = max(1, len(ylabels) // 24)
    ax.set_yticks(range(0, len(ylabels), step_y), ylabels[::step_y], fontsize=8)
    if annotate and m.size <= 200:
        for (r, c), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7.5, color="#111827")
    fig.colorbar(im, ax=ax, label=cbar_label)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return to_png(fig)
