"""Helpers shared by the report sections: tolerant lookups into producer JSON and metric rows."""

from __future__ import annotations

from typing import Any

from pretrain.report.metrics import Metrics, is_number

INTERVENTIONS = ("spike", "skip", "rewind", "extend", "stop", "nan", "divergence", "lr_drop")


def num(v: Any) -> float | None:
    return float(v) if is_number(v) else None


def marker_events(m: Metrics, kinds: tuple[str, ...] = INTERVENTIONS) -> list[tuple[float, str]]:
    return [(float(e["step"]), str(e.get("event"))) for e in m.events
            if e.get("event") in kinds and is_number(e.get("step"))]


def eval_groups(m: Metrics) -> dict[str, Metrics]:
    """Eval rows split by their optional ``model`` field (e.g. the raw and the averaged weights)."""
    groups: dict[str, list[dict]] = {}
    for row in m.eval:
        groups.setdefault(str(row.get("model") or ""), []).append(row)
    return {k: Metrics(eval=v) for k, v in groups.items()}


def with_model(label: str, model: str) -> str:
    return f"{label} [{model}]" if model else label


def pick(d: dict, *names: str) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return None


def count_of(v: Any, *fields: str) -> float | None:
    """A count from an int, or from the first numeric of ``fields`` in a dict."""
    if is_number(v):
        return float(v)
    if isinstance(v, dict):
        for f in fields:
            if is_number(v.get(f)):
                return float(v[f])
    return None


def named_entries(v: Any, name_fields=("step", "name", "type", "reason", "domain")) -> list[tuple[str, Any]]:
    """A dict name->entry, or a list of dicts that carry their name, as (name, entry) pairs in order."""
    if isinstance(v, dict):
        return [(str(k), e) for k, e in v.items()]
    if isinstance(v, list):
        out = []
        for i, e in enumerate(v):
            name = next((str(e[f]) for f in name_fields if isinstance(e, dict) and f in e), f"#{i}")
            out.append((name, e))
        return out
    return []

