"""Small text helpers shared by the curation steps: normalization, words, lines, stable hashes."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Runs of two or more spaces, or any single space other than ' ': a lone ' ' is left alone (no match),
# so a long line of ordinary text is not cut into millions of pieces by re.sub.
_HSPACE = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000\f\v]{2,}|[\t\u00a0\u2000-\u200b\u3000\f\v]")
_MANY_BLANK = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_prose(text: str) -> str:
    """NFC, Unix newlines, runs of horizontal space to one space, trailing space cut, <= 1 blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_HSPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_BLANK.sub("\n\n", "\n".join(lines)).strip()


def normalize_code(text: str) -> str:
    """NFC, Unix newlines and trailing whitespace cut: indentation is meaning in code, so it stays."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def words(text: str) -> list[str]:
    """Whitespace-separated words, the unit Gopher's rules are stated in."""
    return text.split()


def norm_words(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens (punctuation dropped): the unit of dedup and decontamination."""
    return _WORD.findall(text.lower())


def dedup_key(text: str) -> str:
    """Text as compared by exact dedup: lower case, whitespace runs collapsed to one space."""
    return " ".join(text.lower().split())


def hash64(text: str) -> int:
    """A 64-bit hash that is the same in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def utf8_len(text: str) -> int:
    # isascii() is O(1) on CPython (a flag of the string object): most text is not encoded just to count
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
