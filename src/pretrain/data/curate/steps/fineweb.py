"""FineWeb's extra document rules (Penedo et al. 2024)."""

from __future__ import annotations

from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules import fineweb
from pretrain.data.record import Document


@register("fineweb")
class FineWeb(Step):
    Options = fineweb.FineWebOptions

    def __call__(self, doc: Document) -> Verdict | None:
        return fineweb.fineweb_quality(doc.text, self.o)

