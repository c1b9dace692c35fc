"""Curation pipeline configuration: which steps run, in which order, with which thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CurateConfig:
    steps: list[dict[str, Any]] = field(default_factory=list)
    """Pipeline steps in order, each a table with `type` and that step's options ([] = the default pipeline)."""
    workers: int = 0
    """Worker processes (0 = all cores)."""
    keep_removed: bool = True
    """Write every dropped document with its reason under removed/."""
    shard_docs: int = 10_000
    """Documents per output shard."""
