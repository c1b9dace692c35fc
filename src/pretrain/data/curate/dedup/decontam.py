"""Decontamination: find documents that share word n-grams with evaluation sets.

The GPT-3 paper (Brown et al. 2020, Appendix C) and Llama 2/3 flag training documents that share a
13-gram with a benchmark example. Benchmarks are JSONL files; the file stem is the benchmark's name.
Texts are compared as lower-cased alphanumeric words. An example shorter than n words (but at least
``min_words``) is matched whole, as a window of its own length; shorter ones are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pretrain.data.curate.rules.text import hash64, norm_words


@dataclass
class DecontamOptions:
    eval_sets: list[str] = field(default_factory=list)
    """Benchmark JSONL(.gz/.zst) files; each record's `fields` are concatenated and compared."""
    fields: list[str] = field(default_factory=lambda: ["text"])
    """Record fields that hold the benchmark text (missing fields are skipped)."""
    ngram: int = 13
    """n-gram length in words."""
    action: str = "remove"
    """'remove' contaminated documents, or 'flag' them in meta.contamination and keep them."""
    min_matches: int = 1
    """A document is contaminated once it shares this many n-grams with one benchmark."""
    min_words: int = 8
    """Examples shorter than this many words are ignored (too common to mean contamination)."""


def _windows(ws: list[str], n: int) -> list[int]:
    return [hash64(" ".join(ws[i:i + n])) for i in range(len(ws) - n + 1)]


class EvalIndex:
    """Hashes of every benchmark n-gram (and of whole short examples), each mapped to its benchmark."""

    def __init__(self, o: DecontamOptions):
        import json

        from pretrain.data.record import open_text

        self.n = o.ngram
        self.grams: dict[int, str] = {}
        self.short_lengths: set[int] = set()
        for path in o.eval_sets:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"evaluation set not found: {p}")
            name = p.name.split(".")[0]
            with open_text(p, "rt") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{p}:{lineno}: bad JSON in evaluation set: {exc.msg}") from None
                    text = " ".join(str(rec[k]) for k in o.fields if isinstance(rec, dict) and k in rec)
                    ws = norm_words(text)
                    if len(ws) < o.min_words:
                        continue
                    if len(ws) < self.n:
                        self.short_lengths.add(len(ws))
                    for g in _windows(ws, min(self.n, len(ws))):
                        self.grams.setdefault(g, name)

    def matches(self, text: str) -> dict[str, int]:
        """Benchmark name -> number of the document's windows found in that benchmark."""
        hits: dict[str, int] = {}
        ws = norm_words(text)
        for n in (self.n, *sorted(self.short_lengths)):
            for g in _windows(ws, n):
                name = self.grams.get(g)
                if name:
                    hits[name] = hits.get(name, 0) + 1
        return hits
