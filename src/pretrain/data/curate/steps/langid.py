"""Language identification step (py3langid): labels `lang`, optionally filters."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.record import Document


@dataclass
class LangIdOptions:
    languages: list[str] = field(default_factory=list)
    """Allowed ISO 639-1 codes ([] = keep every language, only label)."""
    min_score: float = 0.0
    """Smallest language probability to keep a document (0 = keep all)."""
    max_chars: int = 2000
    """Characters of the document given to the classifier (its cost grows with them; 2000 is plenty)."""


@register("langid")
class LangId(Step):
    """Label `lang` and `meta.lang_score` with py3langid; filter by allowed languages and score."""

    Options = LangIdOptions

    def validate(self) -> None:
        check(0.0 <= self.o.min_score <= 1.0, "min_score", f"must be in [0, 1] (got {self.o.min_score})")

    def __call__(self, doc: Document) -> Verdict | None:
        from pretrain.data.curate.rules.langid import detect_language

        lang, score = detect_language(doc.text, self.o.max_chars)
        doc.lang = lang
        doc.meta["lang_score"] = round(score, 4)
        self.count(f"lang:{lang}")
        if self.o.languages and lang not in self.o.languages:
            return "language", f"language {lang} not in {self.o.languages}"
        if score < self.o.min_score:
            return "low_score", f"language score {score:.3f} < {self.o.min_score}"
        return None

