"""C4 cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning...", Section 2.2).

Line rules: keep only lines that end in terminal punctuation, have at least ``min_words_per_line`` words,
do not mention javascript, and are not cookie / terms-of-use boilerplate. Page rules: drop pages where
a line that passes the first two rules has "lorem ipsum" or a curly bracket (code, in a prose corpus),
or with fewer than ``min_sentences`` sentences left. The document text is rewritten with the kept lines.

C4 is English (its pages were kept only when langdetect said English with p >= 0.99): by default the
step judges only documents labelled ``en`` (or unlabelled), so a Japanese line is never dropped for
having fewer than 5 space-separated words. Sentence endings include the CJK full stops, so a rule run
on every language (``languages = []``) does not delete sentences ending in "。", "！" or "？".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CJK_TERMINAL = ("。", "！", "？", "｡", "．", "」", "』")
TERMINAL = (".", "!", "?", '"', "'", "”", "’", *CJK_TERMINAL)
# Latin marks end a sentence before a space or the end; CJK marks end one wherever they are (no spaces).
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|[。！？｡]+")
BOILERPLATE = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass
class C4Options:
    min_words_per_line: int = 5
    """Lines with fewer words are dropped (C4 kept lines of at least 5 words)."""
    require_terminal_punctuation: bool = True
    """Drop lines that do not end in '.', '!', '?' or a closing quote."""
    drop_javascript_lines: bool = True
    """Drop lines that contain the word 'javascript'."""
    boilerplate_phrases: list[str] = field(default_factory=lambda: list(BOILERPLATE))
    """Lines containing one of these phrases (lower-cased) are dropped."""
    drop_lorem_ipsum: bool = True
    """Drop pages that contain 'lorem ipsum'."""
    drop_curly_bracket: bool = True
    """Drop pages that contain '{' (C4's guard against code in prose)."""
    min_sentences: int = 3
    """Drop pages with fewer sentences left after line filtering."""
    languages: list[str] = field(default_factory=lambda: ["en"])
    """Languages (`lang` labels) the rules judge; other labelled documents pass untouched ([] = all).
    Calibrated on English: the 5-word line minimum would drop every line of a language without spaces."""


def c4_clean(text: str, o: C4Options) -> tuple[str, int, tuple[str, str] | None]:
    """Returns (cleaned text, lines dropped, rejection or None)."""
    # The reference order (TFDS c4_utils.clean_page): a line without terminal punctuation or with too few
    # words is dropped first; "lorem ipsum" and "{" drop the page only when found in a line that would
    # be kept, so braces in code lines the rules cut anyway do not cost the page.
    kept, dropped = [], 0
    for line in text.split("\n"):
        s = line.strip()
        if not s:
            kept.append("")
            continue
        if len(s.split()) < o.min_words_per_line or (o.require_terminal_punctuation and not s.endswith(TERMINAL)):
            dropped += 1
            continue
        ls = s.lower()
        if o.drop_lorem_ipsum and "lorem ipsum" in ls:
            return text, 0, ("lorem_ipsum", "a kept line contains 'lorem ipsum'")
        if o.drop_javascript_lines and "javascript" in ls:
            dropped += 1
            continue
        if o.drop_curly_bracket and "{" in s:
            return text, 0, ("curly_bracket", "a kept line contains '{'")
        if any(p in ls for p in o.boilerplate_phrases):
            dropped += 1
            continue
        kept.append(line)
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    sentences = len(_SENTENCE_END.findall(out))
    if sentences < o.min_sentences:
        return out, dropped, ("too_few_sentences", f"{sentences} sentences < {o.min_sentences} after line filtering")
    return out, dropped, None
