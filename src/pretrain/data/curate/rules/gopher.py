"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis &
Insights from Training Gopher", Appendix A.1.1 and Table A1), with the published thresholds as defaults.

Each check returns ``None`` for a document that passes or ``(reason, detail)`` for the first rule it fails.
Words are whitespace-separated tokens, as in the paper, except in languages written without spaces
(``unsegmented_langs``: Japanese, Chinese, Thai ...), where each character that is not part of a Latin
word counts as a word and the mean-word-length bounds (meaningless there) are not applied; so a
Japanese page is not one 2000-character "word" rejected for its length. The stop-word rule uses a list per
language (``stop_words_by_lang``, English's for ``stop_words_langs``) and skips languages with none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
# Gopher's rule carried to other languages the way FineWeb-2 does it (a per-language list, the same
# threshold): eight frequent function words of each language, which any run of prose uses and lists,
# tables and boilerplate rarely do. Languages not listed here (and not in stop_words_langs) skip the rule.
STOP_WORDS_BY_LANG = {
    "de": ["der", "die", "das", "und", "ist", "zu", "mit", "nicht"],
    "fr": ["le", "la", "les", "et", "est", "des", "que", "une"],
    "es": ["el", "la", "los", "que", "y", "del", "es", "por"],
    "it": ["il", "la", "di", "che", "è", "per", "non", "una"],
    "pt": ["o", "os", "que", "do", "da", "em", "não", "uma"],
    "nl": ["de", "het", "een", "en", "van", "is", "dat", "niet"],
    "sv": ["och", "att", "det", "som", "är", "på", "av", "för"],
    "pl": ["nie", "się", "na", "jest", "że", "do", "to", "jak"],
    "ru": ["и", "не", "на", "что", "это", "как", "по", "он"],
}
BULLETS = ("•", "-", "*", "·", "‣", "◦", "⁃", "○", "▪", "▫", "–")
UNSEGMENTED = ("ja", "zh", "th", "lo", "km", "my", "bo")
# a run of Latin letters/digits is one word; any other non-space character is a word of its own
_UNSEG_WORD = re.compile(r"[0-9A-Za-z\u00C0-\u024F'’-]+|\S")


@dataclass
class GopherQualityOptions:
    min_words: int = 50
    """Fewest words a document may have."""
    max_words: int = 100_000
    """Most words a document may have."""
    min_mean_word_length: float = 3.0
    """Smallest mean word length (characters)."""
    max_mean_word_length: float = 10.0
    """Largest mean word length (characters)."""
    max_symbol_word_ratio: float = 0.1
    """Most '#' and ellipsis ('...', '…') occurrences per word."""
    max_bullet_lines_ratio: float = 0.9
    """Largest fraction of lines that start with a bullet point."""
    max_ellipsis_lines_ratio: float = 0.3
    """Largest fraction of lines that end with an ellipsis."""
    min_alpha_words_ratio: float = 0.8
    """Smallest fraction of words that contain at least one alphabetic character."""
    min_stop_words: int = 2
    """Fewest occurrences of the English stop words the, be, to, of, and, that, have, with (0 = off)."""
    stop_words: list[str] = field(default_factory=lambda: list(STOP_WORDS))
    """The stop-word list (override it for other languages)."""
    stop_words_langs: list[str] = field(default_factory=lambda: ["en"])
    """Languages judged with `stop_words` (and unlabelled documents); [] = every language not in
    `stop_words_by_lang` (an English list would reject every German page)."""
    stop_words_by_lang: dict[str, list[str]] = field(default_factory=lambda: {
        k: list(v) for k, v in STOP_WORDS_BY_LANG.items()})
    """Per-language stop-word lists, used instead of `stop_words` for documents labelled with that
    language (the same `min_stop_words` threshold, as FineWeb-2 does); {} = English only."""
    unsegmented_langs: list[str] = field(default_factory=lambda: list(UNSEGMENTED))
    """Languages written without spaces between words: words are counted per character and the
    mean-word-length bounds are off for them."""


def gopher_quality(text: str, o: GopherQualityOptions, lang: str = "") -> tuple[str, str] | None:
    unsegmented = lang in o.unsegmented_langs
    ws = _UNSEG_WORD.findall(text) if unsegmented else text.split()
    n = len(ws)
    if n < o.min_words:
        return "word_count", f"{n} words < {o.min_words}"
    if n > o.max_words:
        return "word_count", f"{n} words > {o.max_words}"
    mean_len = sum(len(w) for w in ws) / n
    if not unsegmented and not o.min_mean_word_length <= mean_len <= o.max_mean_word_length:
        return "mean_word_length", f"mean word length {mean_len:.2f} outside [{o.min_mean_word_length}, {o.max_mean_word_length}]"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / n > o.max_symbol_word_ratio:
        return "symbol_word_ratio", f"symbol/word ratio {symbols / n:.3f} > {o.max_symbol_word_ratio}"
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if lines:
        bullets = sum(ln.lstrip().startswith(BULLETS) for ln in lines) / len(lines)
        if bullets > o.max_bullet_lines_ratio:
            return "bullet_lines", f"bullet lines {bullets:.3f} > {o.max_bullet_lines_ratio}"
        ellipsis = sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines)
        if ellipsis > o.max_ellipsis_lines_ratio:
            return "ellipsis_lines", f"ellipsis lines {ellipsis:.3f} > {o.max_ellipsis_lines_ratio}"
    alpha = sum(any(c.isalpha() for c in w) for w in ws) / n
    if alpha < o.min_alpha_words_ratio:
        return "alpha_words", f"alphabetic words {alpha:.3f} < {o.min_alpha_words_ratio}"
    stops = stop_words_for(lang, o) if o.min_stop_words else None
    if stops:
        count = sum(w.lower().strip(".,;:!?\"'()«»„“”") in stops for w in ws)
        if count < o.min_stop_words:
            return "stop_words", f"{count} stop words < {o.min_stop_words}"
    return None


def stop_words_for(lang: str, o: GopherQualityOptions) -> set[str] | None:
    """The stop words a document of ``lang`` is judged with, or None when the rule does not apply to it."""
    if lang in o.stop_words_by_lang:
        return set(o.stop_words_by_lang[lang])
    if not o.stop_words_langs or not lang or lang in o.stop_words_langs:
        return set(o.stop_words)
    return None


@dataclass
class GopherRepetitionOptions:
    max_dup_line_fraction: float = 0.30
    """Largest fraction of lines that repeat an earlier line."""
    max_dup_para_fraction: float = 0.30
    """Largest fraction of paragraphs (blank-line separated) that repeat an earlier paragraph."""
    max_dup_line_char_fraction: float = 0.20
    """Largest fraction of characters in lines that repeat an earlier line."""
    max_dup_para_char_fraction: float = 0.20
    """Largest fraction of characters in paragraphs that repeat an earlier paragraph."""
    max_top_ngram_char_fraction: dict[str, float] = field(
        default_factory=lambda: {"2": 0.20, "3": 0.18, "4": 0.16})
    """n -> largest fraction of word characters covered by the single most frequent n-gram."""
    max_dup_ngram_char_fraction: dict[str, float] = field(
        default_factory=lambda: {"5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10})
    """n -> largest fraction of word characters covered by n-grams that occur more than once."""


def _dup_fractions(parts: list[str]) -> tuple[float, float]:
    """(fraction of parts equal to an earlier part, fraction of characters in those parts)."""
    if not parts:
        return 0.0, 0.0
    seen: set[str] = set()
    dup = dup_chars = total_chars = 0
    for p in parts:
        total_chars += len(p)
        if p in seen:
            dup += 1
            dup_chars += len(p)
        else:
            seen.add(p)
    return dup / len(parts), (dup_chars / total_chars if total_chars else 0.0)


def _gram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit polynomial hash of every word n-gram (wrapping arithmetic; collisions ~ 2^-64)."""
    h = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    for k in range(n):
        h = h * np.uint64(0x100000001B3) + ids[k: len(ids) - n + 1 + k]
    return h


def _word_arrays(ws: list[str]) -> tuple[np.ndarray, np.ndarray]:
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab) + 1) for w in ws), dtype=np.uint64, count=len(ws))
    lens = np.fromiter(map(len, ws), dtype=np.int64, count=len(ws))
    return ids, lens


def top_ngram_char_fraction(ws: list[str], n: int, arrays=None) -> float:
    """Characters of the most frequent word n-gram (times its count) over all word characters.
    Among equally frequent n-grams the longest is taken."""
    ids, lens = arrays or _word_arrays(ws)
    total = int(lens.sum())
    if len(ws) < n or not total:
        return 0.0
    keys = _gram_keys(ids, n)
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    top = counts.max()
    if top < 2:
        return 0.0
    gram_chars = np.convolve(lens, np.ones(n, dtype=np.int64), mode="valid")  # chars of the n-gram at i
    return float(gram_chars[first[counts == top]].max() * top / total)


def dup_ngram_char_fraction(ws: list[str], n: int, arrays=None) -> float:
    """Characters of words covered by any word n-gram occurring more than once, each word counted once."""
    ids, lens = arrays or _word_arrays(ws)
    total = int(lens.sum())
    if len(ws) < n or not total:
        return 0.0
    keys = _gram_keys(ids, n)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    starts = counts[inverse] > 1
    if not starts.any():
        return 0.0
    # word j is covered if a duplicated n-gram starts in [j-n+1, j]: a running window sum of the starts
    cover = np.convolve(starts.astype(np.int64), np.ones(n, dtype=np.int64))[: len(ws)] > 0
    return float(lens[cover].sum() / total)


def gopher_repetition(text: str, o: GopherRepetitionOptions) -> tuple[str, str] | None:
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    frac, char_frac = _dup_fractions(lines)
    if frac > o.max_dup_line_fraction:
        return "dup_lines", f"duplicate lines {frac:.3f} > {o.max_dup_line_fraction}"
    if char_frac > o.max_dup_line_char_fraction:
        return "dup_line_chars", f"characters in duplicate lines {char_frac:.3f} > {o.max_dup_line_char_fraction}"
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    frac, char_frac = _dup_fractions(paras)
    if frac > o.max_dup_para_fraction:
        return "dup_paragraphs", f"duplicate paragraphs {frac:.3f} > {o.max_dup_para_fraction}"
    if char_frac > o.max_dup_para_char_fraction:
        return "dup_paragraph_chars", f"characters in duplicate paragraphs {char_frac:.3f} > {o.max_dup_para_char_fraction}"
    ws = text.split()
    arrays = _word_arrays(ws)
    for n, limit in sorted(o.max_top_ngram_char_fraction.items(), key=lambda kv: int(kv[0])):
        f = top_ngram_char_fraction(ws, int(n), arrays)
        if f > limit:
            return f"top_{n}gram", f"top {n}-gram character fraction {f:.3f} > {limit}"
    for n, limit in sorted(o.max_dup_ngram_char_fraction.items(), key=lambda kv: int(kv[0])):
        f = dup_ngram_char_fraction(ws, int(n), arrays)
        if f > limit:
            return f"dup_{n}gram", f"duplicated {n}-gram character fraction {f:.3f} > {limit}"
    return None
