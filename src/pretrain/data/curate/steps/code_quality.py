"""Source-code quality rules."""

from __future__ import annotations

from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules import code_rules
from pretrain.data.record import Document


@register("code_quality")
class CodeQuality(Step):
    Options = code_rules.CodeOptions

    def __call__(self, doc: Document) -> Verdict | None:
        return code_rules.code_quality(doc.text, self.o)

