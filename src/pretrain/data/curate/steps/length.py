"""Minimum / maximum document length in characters."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.record import Document


@dataclass
class LengthOptions:
    min_chars: int = 1
    """Fewest characters a document may have."""
    max_chars: int = 0
    """Most characters a document may have (0 = no limit)."""


@register("length")
class Length(Step):
    Options = LengthOptions

    def __call__(self, doc: Document) -> Verdict | None:
        n = len(doc.text)
        if n < self.o.min_chars:
            return "too_short", f"{n} characters < {self.o.min_chars}"
        if self.o.max_chars and n > self.o.max_chars:
            return "too_long", f"{n} characters > {self.o.max_chars}"
        return None

