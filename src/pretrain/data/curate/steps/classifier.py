"""Quality-score and topic steps over a classifier trained with `pretrain curate-classifier`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, keep_fraction_hash, register
from pretrain.data.curate.rules.classifier import TextClassifier
from pretrain.data.record import Document


@dataclass
class QualityOptions:
    model: str = ""
    """Path of a classifier trained with `pretrain curate-classifier` (.npz)."""
    positive_label: str = ""
    """Label whose probability is the quality score ('' = the last label in sorted order)."""
    min_score: float = 0.0
    """Documents scoring below this are removed (0 = only record meta.quality_score)."""
    meta_key: str = "quality_score"
    """Where the score is stored in meta."""


@register("quality_classifier")
class QualityClassifierStep(Step):
    Options = QualityOptions

    def validate(self) -> None:
        check(bool(self.o.model), "model", "path of a trained classifier (.npz) is required")
        check(Path(self.o.model).is_file(), "model", f"classifier model not found: {self.o.model}")
        check(0.0 <= self.o.min_score <= 1.0, "min_score", f"must be in [0, 1] (got {self.o.min_score})")

    def setup(self) -> None:
        self.model = TextClassifier.load(self.o.model)
        label = self.o.positive_label or self.model.labels[-1]
        if label not in self.model.labels:
            raise ValueError(f"{self.o.model}: positive_label {label!r} not in {self.model.labels}")
        self.col = self.model.labels.index(label)

    def __call__(self, doc: Document) -> Verdict | None:
        score = float(self.model.predict_proba([doc.text])[0, self.col])
        doc.meta[self.o.meta_key] = round(score, 4)
        if score < self.o.min_score:
            return "low_quality", f"quality score {score:.3f} < {self.o.min_score}"
        return None


@dataclass
class TopicOptions:
    model: str = ""
    """Path of a multi-label classifier trained with `pretrain curate-classifier` (.npz)."""
    keep_fraction: dict[str, float] = field(default_factory=dict)
    """Topic -> fraction of its documents to keep (downsampling over-represented topics; unlisted = 1)."""
    meta_key: str = "topic"
    """Where the label is stored in meta."""


@register("topic")
class TopicStep(Step):
    """Label each document with a topic; optionally keep only a fraction of some topics (by id hash,
    so the same documents are chosen on every run and with any number of workers)."""

    Options = TopicOptions

    def validate(self) -> None:
        check(bool(self.o.model), "model", "path of a trained classifier (.npz) is required")
        check(Path(self.o.model).is_file(), "model", f"classifier model not found: {self.o.model}")
        for k, v in self.o.keep_fraction.items():
            check(0.0 <= v <= 1.0, f"keep_fraction.{k}", f"must be in [0, 1] (got {v})")

    def setup(self) -> None:
        self.model = TextClassifier.load(self.o.model)

    def __call__(self, doc: Document) -> Verdict | None:
        p = self.model.predict_proba([doc.text])[0]
        label = self.model.labels[int(p.argmax())]
        doc.meta[self.o.meta_key] = label
        self.count(f"topic:{label}")
        keep = self.o.keep_fraction.get(label, 1.0)
        if keep < 1.0 and keep_fraction_hash(doc.id, self.label) >= keep:
            return f"downsampled:{label}", f"topic {label} kept at {keep:.0%}"
        return None

