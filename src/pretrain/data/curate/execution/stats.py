"""Counting for the funnel: per step, per reason and per domain, documents and bytes; and the table.

Each shard task produces a partial :class:`ShardStats` (saved as JSON beside its outputs, which is also
the task's completion marker); :func:`merge` sums them in shard order into the run's ``stats.json``.
"""

from __future__ import annotations

import re
from typing import Any


def _add(d: dict, key: str, docs: int, nbytes: int) -> None:
    row = d.get(key)  # get first: setdefault would build the default dict for every document
    if row is None:
        row = d[key] = {"documents": 0, "bytes": 0}
    row["documents"] += docs
    row["bytes"] += nbytes


def reason_key(reason: str) -> str:
    """A quarantine reason without its specifics (byte offsets, parser messages) for grouping."""
    return re.sub(r"\s+\d+", "", re.split(r"[:(]", reason, maxsplit=1)[0]).strip()


def new_shard_stats() -> dict[str, Any]:
    return {"documents_in": 0, "bytes_in": 0, "quarantined": 0, "quarantine_reasons": {}, "domains_in": {},
            "domains_quarantined": {}, "steps": {}, "kept": 0, "bytes_kept": 0, "domains_kept": {},
            "samples": {}, "timing": {}, "duplicate_ids": 0, "duplicate_id_examples": {}}


def step_row(stats: dict, label: str, type_: str) -> dict[str, Any]:
    row = stats["steps"].get(label)
    if row is not None:
        return row
    return stats["steps"].setdefault(label, {
        "type": type_, "documents_in": 0, "bytes_in": 0, "skipped": 0, "removed": 0, "bytes_removed": 0,
        "modified": 0, "bytes_out": 0, "reasons": {}, "domains": {}, "counters": {}})


def add_sample(stats: dict, key: str, doc, detail: str, limit: int, chars: int) -> None:
    if limit <= 0:
        return
    lst = stats["samples"].setdefault(key, [])
    if len(lst) < limit:
        lst.append({"id": doc.id, "source": doc.source, "domain": doc.domain, "detail": detail,
                    "text": doc.text[:chars]})


def _sum_into(dst: Any, src: Any) -> Any:
    if isinstance(src, dict):
        for k, v in src.items():
            dst[k] = _sum_into(dst[k], v) if k in dst else _copy(v)
        return dst
    if isinstance(src, (int, float)) and not isinstance(src, bool):
        return dst + src
    return dst


def _copy(v: Any) -> Any:
    import copy

    return copy.deepcopy(v)


def merge(parts: list[dict[str, Any]], step_order: list[tuple[str, str]], limit: int) -> dict[str, Any]:
    """Sum shard stats (in shard order) into the final stats dict."""
    total = new_shard_stats()
    samples: dict[str, list] = {}
    for p in parts:
        for k, v in p.items():
            if k == "samples":
                for key, lst in v.items():
                    samples.setdefault(key, []).extend(lst)
            elif k in total and isinstance(v, (int, dict)):
                total[k] = _sum_into(total[k], v) if isinstance(v, dict) else total[k] + v
    steps = []
    reasons: dict[str, dict] = {}
    removed = removed_bytes = 0
    domains: dict[str, dict[str, int]] = {}

    def dom(d: str) -> dict[str, int]:
        return domains.setdefault(d, {"documents_in": 0, "bytes_in": 0, "kept": 0, "bytes_kept": 0, "removed": 0,
                                      "bytes_removed": 0, "quarantined": 0, "bytes_quarantined": 0})

    for d, row in total["domains_in"].items():
        dom(d)["documents_in"] += row["documents"]
        dom(d)["bytes_in"] += row["bytes"]
    for d, row in total["domains_quarantined"].items():
        dom(d)["quarantined"] += row["documents"]
        dom(d)["bytes_quarantined"] += row["bytes"]
    for d, row in total["domains_kept"].items():
        dom(d)["kept"] += row["documents"]
        dom(d)["bytes_kept"] += row["bytes"]
    for label, type_ in step_order:
        row = total["steps"].get(label) or step_row({"steps": {}}, label, type_)
        row = {"name": label, **row, "kept": row["documents_in"] - row["removed"]}
        steps.append(row)
        removed += row["removed"]
        removed_bytes += row["bytes_removed"]
        for r, v in row["reasons"].items():
            reasons[f"{label}:{r}"] = v
        for d, v in row["domains"].items():
            dom(d)["removed"] += v.get("removed", {}).get("documents", 0)
            dom(d)["bytes_removed"] += v.get("removed", {}).get("bytes", 0)
    out = {
        "documents_in": int(total["documents_in"]),
        "kept": int(total["kept"]),
        "removed": int(removed),
        "quarantined": int(total["quarantined"]),
        "bytes_in": int(total["bytes_in"]),
        "bytes_kept": int(total["bytes_kept"]),
        "bytes_removed": int(removed_bytes),
        "steps": steps,
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]["documents"])),
        "quarantine_reasons": dict(sorted(total["quarantine_reasons"].items(), key=lambda kv: -kv[1]["documents"])),
        "domains": dict(sorted(domains.items())),
        "samples": {k: v[:limit] for k, v in sorted(samples.items())},
        "timing": total["timing"],
        "duplicate_ids": int(total["duplicate_ids"]),
        "duplicate_id_examples": dict(list(total["duplicate_id_examples"].items())[:3]),
    }
    return out


def print_funnel(stats: dict[str, Any], console=None) -> None:
    """Print the funnel: one row per step (documents and MB in, removed, kept, top reasons) and per domain."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal and console.width < 130:  # pipes and logs: do not squeeze the table
            console = Console(width=130)
    t = Table(title="curation funnel", show_lines=False)
    for col in ("step", "docs in", "removed", "kept", "MB in", "MB out", "modified", "top reasons"):
        t.add_column(col, justify="left" if col in ("step", "top reasons") else "right")
    t.add_row("read", str(stats["documents_in"]), f"{stats['quarantined']} quar.",
              str(stats["documents_in"] - stats["quarantined"]), f"{stats['bytes_in'] / 1e6:.2f}", "", "",
              ", ".join(f"{k} {v['documents']}" for k, v in list(stats.get("quarantine_reasons", {}).items())[:3]))
    for s in stats["steps"]:
        top = sorted(s["reasons"].items(), key=lambda kv: -kv[1]["documents"])[:3]
        t.add_row(s["name"], str(s["documents_in"]), str(s["removed"]), str(s["kept"]), f"{s['bytes_in'] / 1e6:.2f}",
                  f"{s['bytes_out'] / 1e6:.2f}", str(s["modified"] or ""),
                  ", ".join(f"{k} {v['documents']}" for k, v in top))
    console.print(t)
    d = Table(title="per domain")
    for col in ("domain", "docs in", "kept", "removed", "quarantined", "MB in", "MB kept"):
        d.add_column(col, justify="left" if col == "domain" else "right")
    for name, row in stats["domains"].items():
        d.add_row(name, str(row["documents_in"]), str(row["kept"]), str(row["removed"]), str(row["quarantined"]),
                  f"{row['bytes_in'] / 1e6:.2f}", f"{row['bytes_kept'] / 1e6:.2f}")
    console.print(d)
    console.print(f"documents in {stats['documents_in']} = kept {stats['kept']} + removed {stats['removed']} "
                  f"+ quarantined {stats['quarantined']}")
