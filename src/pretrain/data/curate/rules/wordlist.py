"""Word-list counter ("dirty word counting", Llama 3, Dubey et al. 2024, Section 3.1.1).

Counts whole-word (or whole-phrase) occurrences of a user-supplied list and rejects documents whose
count or ratio per word is too high. No list ships with the tool: supply ``words`` or ``words_file``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class WordListOptions:
    words: list[str] = field(default_factory=list)
    """Words or phrases to count (case-insensitive, whole words)."""
    words_file: str = ""
    """A file with one word or phrase per line, added to `words`."""
    max_ratio: float = 0.01
    """Largest number of matches per word of the document."""
    max_count: int = 0
    """Largest number of matches (0 = only the ratio applies)."""


def compile_wordlist(o: WordListOptions) -> re.Pattern:
    items = [w.strip().lower() for w in o.words if w.strip()]
    if o.words_file:
        p = Path(o.words_file)
        if not p.is_file():
            raise FileNotFoundError(f"word list not found: {p}")
        items += [ln.strip().lower() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not items:
        raise ValueError("the wordlist step needs `words` or `words_file`")
    alternatives = "|".join(re.escape(w) for w in sorted(set(items), key=lambda w: (-len(w), w)))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def wordlist_check(text: str, pattern: re.Pattern, o: WordListOptions) -> tuple[int, tuple[str, str] | None]:
    count = len(pattern.findall(text))
    n_words = max(1, len(text.split()))
    if o.max_count and count > o.max_count:
        return count, ("count", f"{count} listed words > {o.max_count}")
    if count / n_words > o.max_ratio:
        return count, ("ratio", f"listed words per word {count / n_words:.4f} > {o.max_ratio}")
    return count, None
