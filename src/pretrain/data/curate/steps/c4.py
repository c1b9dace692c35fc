"""C4 line and document rules (Raffel et al. 2020)."""

from __future__ import annotations

from pretrain.data.curate import c4
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.record import Document


@register("c4")
class C4(Step):
    Options = c4.C4Options

    def __call__(self, doc: Document) -> Verdict | None:
        text, dropped, verdict = c4.c4_clean(doc.text, self.o)
        if verdict:
            return verdict
        if dropped:
            self.count("lines_dropped", dropped)
            doc.text = text
        return None

