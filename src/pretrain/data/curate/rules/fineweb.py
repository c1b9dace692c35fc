"""FineWeb's extra quality rules (Penedo et al. 2024, "The FineWeb Datasets", Section 3.3.3).

Made to hold for languages other than English, as FineWeb-2 applies them: CJK full stops count as
terminal punctuation, and a line's length for the short-line rule is its display width (a CJK character
counts 2, as it holds about two Latin letters' worth of text), so dense Japanese or Chinese lines are
not all "short".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from pretrain.data.curate.rules.c4 import TERMINAL


def display_width(line: str) -> int:
    """Characters, counting East Asian wide and full-width ones twice."""
    if line.isascii():
        return len(line)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@dataclass
class FineWebOptions:
    min_punct_line_fraction: float = 0.12
    """Smallest fraction of lines ending in terminal punctuation."""
    max_dup_line_char_fraction: float = 0.1
    """Largest fraction of characters in lines that repeat an earlier line."""
    short_line_chars: int = 30
    """A line narrower than this many characters (display width) is 'short'."""
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
    short = sum(display_width(ln) < o.short_line_chars for ln in lines) / len(lines)
    if short > o.max_short_line_fraction:
        return "short_lines", f"short lines {short:.3f} > {o.max_short_line_fraction}"
    return None
