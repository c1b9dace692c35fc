"""PII redaction step (e-mails, phones, IPs, card numbers)."""

from __future__ import annotations

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules import pii
from pretrain.data.record import Document


@register("pii")
class PII(Step):
    """Redact e-mails, phone numbers, IP addresses and Luhn-valid card numbers with placeholders."""

    Options = pii.PIIOptions

    def validate(self) -> None:
        bad = [t for t in self.o.types if t not in pii.DEFAULT_PLACEHOLDERS]
        check(not bad, "types", f"unknown PII type(s) {bad}; choose from {list(pii.DEFAULT_PLACEHOLDERS)}")

    def __call__(self, doc: Document) -> Verdict | None:
        text, counts = pii.redact_pii(doc.text, self.o)
        if counts:
            doc.text = text
            doc.meta["pii"] = {**doc.meta.get("pii", {}), **counts}
            for k, v in counts.items():
                self.count(k, v)
        return None

