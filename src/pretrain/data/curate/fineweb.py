"""FineWeb's extra quality rules (Penedo et al. 2024, "The FineWeb Datasets", Section 3.3.3)."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.data.curate.c4 import TERMINAL


@dataclass
class FineWebOptions:
    min_punct_line_fraction: float = 0.12
    """Smallest fraction of lines ending in terminal punctuation."""
    max_dup_line_char_fraction: float = 0.1
    """Largest fraction of characters in lines that repeat an earlier line."""
    short_line_chars: int = 30
    """A line shorter than this many characters is 'short'."""
    max_short_line_fraction: float = 0.67
    """Largest fraction of short lines."""


def fineweb_quality(text: str, o: FineWebOptions) -> tuple[str, str] | None:
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        return "empty", "no non-empty lines"
    punct = sum(ln.endswith(TERMINAL) for ln in lines) / len(lines)
    if punct < o.min_punct_line_fraction:
        return "punct_lines", f"lines ending in punctuation {punct:.3f} < {o.min_punct_line_fraction}"
    seen: set[str] = set()
    dup_chars = 0
    for ln in lines:
        if ln in seen:
            dup_chars += len(ln)
        seen.add(ln)
    total = sum(len(ln) for ln in lines)
    frac = dup_chars / total
    if frac > o.max_dup_line_char_fraction:
        return "dup_line_chars", f"characters in duplicate lines {frac:.3f} > {o.max_dup_line_char_fraction}"
    short = sum(len(ln) < o.short_line_chars for ln in lines) / len(lines)
    if short > o.max_short_line_fraction:
        return "short_lines", f"short lines {short:.3f} > {o.max_short_line_fraction}"
    return None
