"""Reading ``metrics.jsonl``: train, eval and event rows, tolerant of partial and restarted runs.

A run killed mid-write leaves a truncated last line; a rewound run logs some steps twice. Neither may
break the report, and neither may pass silently: unreadable lines are kept in ``bad_lines`` (file and
line number) so the report can say what it skipped, and repeated steps keep their last value (the
replay after a rewind supersedes what was rewound).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Fields of a train/eval row that are coordinates or labels rather than measured values.
AXIS_FIELDS = ("type", "step", "tokens", "time_s", "stage")


def is_number(value: Any) -> bool:
    """A real number (bools are not); NaN and inf count, plots drop them later."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Metrics:
    """The rows of one metrics.jsonl, split by ``type``."""

    train: list[dict] = field(default_factory=list)
    eval: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    other: list[dict] = field(default_factory=list)
    """Rows whose ``type`` is none of train/eval/event (kept, not plotted)."""
    bad_lines: list[str] = field(default_factory=list)
    """``path:line: why`` for every line that could not be used."""
    path: Path | None = None

    @property
    def empty(self) -> bool:
        return not (self.train or self.eval or self.events)

    def keys(self, kind: str, prefix: str = "") -> list[str]:
        """Numeric field names of ``kind`` rows (``train``/``eval``) starting with ``prefix``, sorted."""
        found: set[str] = set()
        for row in getattr(self, kind):
            for k, v in row.items():
                if k.startswith(prefix) and k not in AXIS_FIELDS and is_number(v):
                    found.add(k)
        return sorted(found)

    def series(self, kind: str, key: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of one field over ``kind`` rows, finite values only, in row order."""
        xs, ys = [], []
        for row in getattr(self, kind):
            xv, yv = row.get(x), row.get(key)
            if is_number(xv) and is_number(yv) and math.isfinite(xv) and math.isfinite(yv):
                xs.append(float(xv))
                ys.append(float(yv))
        return np.asarray(xs), np.asarray(ys)

    def last(self, kind: str, key: str) -> float | None:
        """The last finite value of ``key`` in ``kind`` rows."""
        for row in reversed(getattr(self, kind)):
            v = row.get(key)
            if is_number(v) and math.isfinite(v):
                return float(v)
        return None

    def stages(self) -> list[tuple[float, str]]:
        """(first step, name) of every training stage, from ``stage`` fields and ``stage_start`` events."""
        starts: dict[str, float] = {}
        for ev in self.events:
            if ev.get("event") == "stage_start" and is_number(ev.get("step")):
                name = str(ev.get("stage") or _stage_name(ev.get("detail")) or f"stage@{ev['step']}")
                starts.setdefault(name, float(ev["step"]))
        prev = None
        for row in self.train:
            stage = row.get("stage")
            if stage is not None and stage != prev and is_number(row.get("step")):
                starts.setdefault(str(stage), float(row["step"]))
            prev = stage
        return sorted(((s, n) for n, s in starts.items()), key=lambda t: t[0])

    def step_to_tokens(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Monotone (step, tokens) pairs from train rows, for a tokens axis beside the step axis."""
        steps, tokens = self.series("train", "tokens")
        if len(steps) < 2 or np.any(np.diff(steps) <= 0) or np.any(np.diff(tokens) < 0):
            return None
        return steps, tokens


def _stage_name(detail: Any) -> str:
    """The stage named in an event detail: a dict's stage/name, or the first word of a string."""
    if isinstance(detail, dict):
        return str(detail.get("stage") or detail.get("name") or "")
    words = str(detail or "").split()
    return words[0] if words else ""


def _dedupe_by_step(rows: list[dict]) -> list[dict]:
    """Keep the last row logged for each step, in step order (a rewind's replay supersedes).

    Eval rows may carry a ``model`` field (raw vs averaged weights at the same step); each keeps its row.
    """
    by_step: dict[tuple[float, str], dict] = {}
    for row in rows:
        by_step[(row["step"], str(row.get("model") or ""))] = row
    return [by_step[k] for k in sorted(by_step)]


def parse_metrics(lines: list[str], source: str = "metrics.jsonl") -> Metrics:
    """Split metrics lines into typed rows; bad lines are recorded in ``bad_lines`` (never raised)."""
    m = Metrics()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            m.bad_lines.append(f"{source}:{lineno}: not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            m.bad_lines.append(f"{source}:{lineno}: not a JSON object")
            continue
        kind = row.get("type")
        if kind in ("train", "eval"):
            if not is_number(row.get("step")):
                m.bad_lines.append(f"{source}:{lineno}: {kind} row without a numeric 'step'")
                continue
            getattr(m, kind).append(row)
        elif kind == "event":
            m.events.append(row)
        else:
            m.other.append(row)
    m.train = _dedupe_by_step(m.train)
    m.eval = _dedupe_by_step(m.eval)
    return m


def read_metrics(path: str | Path) -> Metrics:
    """Read a metrics.jsonl (an absent file gives empty Metrics, so partial runs still report)."""
    path = Path(path)
    if not path.exists():
        return Metrics(path=path)
    text = path.read_text(encoding="utf-8", errors="replace")
    m = parse_metrics(text.splitlines(), str(path))
    m.path = path
    return m
