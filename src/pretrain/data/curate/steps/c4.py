"""C4 line and document rules (Raffel et al. 2020)."""

from __future__ import annotations

from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules import c4
from pretrain.data.curate.rules.langid import relabel
from pretrain.data.record import Document


@register("c4")
class C4(Step):
    Options = c4.C4Options

    def wants(self, doc: Document) -> bool:
        # English-calibrated: other labelled languages are skipped (and counted as skipped)
        return super().wants(doc) and (not self.o.languages or not doc.lang or doc.lang in self.o.languages)

    def __call__(self, doc: Document) -> Verdict | None:
        text, dropped, verdict = c4.c4_clean(doc.text, self.o)
        if verdict:
            return verdict
        if dropped:
            self.count("lines_dropped", dropped)
            doc.text = text
            if relabel(doc):  # the lines left may be in another language than the page was
                self.count("relabelled")
        return None

