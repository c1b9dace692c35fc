"""Gopher quality and repetition filters (Rae et al. 2021)."""

from __future__ import annotations

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules import gopher
from pretrain.data.record import Document


@register("gopher_quality")
class GopherQuality(Step):
    Options = gopher.GopherQualityOptions

    def validate(self) -> None:
        check(self.o.min_words <= self.o.max_words, "min_words", "must be <= max_words")

    def __call__(self, doc: Document) -> Verdict | None:
        return gopher.gopher_quality(doc.text, self.o, doc.lang)


@register("gopher_repetition")
class GopherRepetition(Step):
    Options = gopher.GopherRepetitionOptions

    def validate(self) -> None:
        for name in ("max_top_ngram_char_fraction", "max_dup_ngram_char_fraction"):
            for k in getattr(self.o, name):
                check(str(k).isdigit() and int(k) > 0, name, f"keys must be n-gram sizes like '5' (got {k!r})")

    def __call__(self, doc: Document) -> Verdict | None:
        return gopher.gopher_repetition(doc.text, self.o)

