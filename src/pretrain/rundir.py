"""The run directory convention, in one place.

runs/<name>/
  config.toml          resolved run config (every default filled in)
  metrics.jsonl        one JSON object per logged step or event (see docs/architecture.md)
  tensorboard/         TensorBoard event files mirroring metrics.jsonl
  checkpoints/         step_00000100/ ... each a self-contained checkpoint directory
  corpus/              raw inputs made by `pretrain corpus builtin` (quickstart only)
  curated/             curation output: data/, removed/, quarantine/, stats.json
  tokenizer/           tokenizer.json and stats.json
  tokens/              token shards per domain (train/ and val/)
  eval/                evaluation results (heldout.json, samples.json, needle.json/png, ...)
  report/              index.html and its images
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def for_name(cls, name: str, base: str | Path = "runs") -> RunDir:
        return cls(Path(base) / name)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def make(self) -> RunDir:
        """Create the directory and the folders the run writes to, proving each writable first: a
        read-only or foreign run directory stops here in one line (OutputNotWritable), not at the first
        checkpoint."""
        from pretrain.writable import ensure_writable

        for p in (self.root, self.checkpoints, self.eval, self.report):
            ensure_writable(p, "run directory" if p == self.root else "run folder")
        return self
