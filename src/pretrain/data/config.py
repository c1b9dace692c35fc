"""Data stage configuration: raw inputs, curation, mixture and loader."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check
from pretrain.data.curate.config import CurateConfig
from pretrain.data.loader_config import LoaderConfig, MixtureConfig


@dataclass
class DataConfig:
    inputs: list[str] = field(default_factory=list)
    """Raw input files or directories to curate (['builtin'] = the built-in corpus)."""
    builtin_domains: list[str] = field(default_factory=lambda: ["code", "docs", "literature"])
    """Domains of the built-in corpus to build (code, docs, literature)."""
    builtin_max_docs: int = 0
    """Keep only the first this many documents of each built-in domain (0 = all; for tests and demos)."""
    tokens: str = ""
    """Token shard directory with train/ and val/ splits ('' = <run>/tokens)."""
    val_fraction: float = 0.05
    """Fraction of documents per domain held out for validation (chosen by document hash)."""
    curate: CurateConfig = field(default_factory=CurateConfig)
    """Curation pipeline."""
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    """Domain weights over training."""
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """Packing loader."""

    def validate(self) -> None:
        check(0.0 <= self.val_fraction < 1.0, "val_fraction", f"must be in [0, 1) (got {self.val_fraction})")
        check(self.builtin_max_docs >= 0, "builtin_max_docs", "must be >= 0")
        unknown = sorted(set(self.builtin_domains) - {"code", "docs", "literature"})
        check(not unknown, "builtin_domains", f"unknown domain(s) {unknown}; choose from code, docs, literature")
