"""Evaluation-set decontamination by n-gram overlap."""

from __future__ import annotations

from pathlib import Path

from pretrain.configlib import check
from pretrain.data.curate.dedup.decontam import DecontamOptions
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.record import Document


@register("decontaminate")
class Decontaminate(Step):
    Options = DecontamOptions

    def validate(self) -> None:
        check(bool(self.o.eval_sets), "eval_sets", "list at least one evaluation JSONL file")
        check(self.o.action in ("remove", "flag"), "action", f"must be 'remove' or 'flag' (got {self.o.action!r})")
        check(self.o.ngram >= 1, "ngram", "must be >= 1")
        for p in self.o.eval_sets:
            check(Path(p).is_file(), "eval_sets", f"evaluation set not found: {p}")

    def setup(self) -> None:
        from pretrain.data.curate.dedup.decontam import EvalIndex

        self.index = EvalIndex(self.o)

    def __call__(self, doc: Document) -> Verdict | None:
        hits = {k: v for k, v in self.index.matches(doc.text).items() if v >= self.o.min_matches}
        if not hits:
            return None
        for name in hits:
            self.count(f"matched:{name}")
        doc.meta["contamination"] = hits
        if self.o.action == "remove":
            worst = max(sorted(hits), key=lambda k: hits[k])
            return f"contaminated:{worst}", f"shares {hits[worst]} {self.o.ngram}-grams with {worst}"
        return None

