"""Unicode and whitespace normalization step."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules.text import normalize_code, normalize_prose
from pretrain.data.record import Document


@dataclass
class NormalizeOptions:
    code_domains: list[str] = field(default_factory=lambda: ["code"])
    """Domains normalized as code (indentation kept)."""


@register("normalize")
class Normalize(Step):
    """Unicode NFC and whitespace normalization (prose: collapse spaces; code: keep indentation)."""

    Options = NormalizeOptions

    def __call__(self, doc: Document) -> Verdict | None:
        text = normalize_code(doc.text) if doc.domain in self.o.code_domains else normalize_prose(doc.text)
        if text != doc.text:
            doc.text = text
        if not text.strip():
            return "empty", "nothing left after whitespace normalization"
        return None

