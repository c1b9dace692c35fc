"""The curation pipeline: raw files -> curated, deduplicated, decontaminated documents with stats.

    from pretrain.data.curate import CurateConfig, curate, print_funnel
    stats = curate(["raw/"], "curated/", CurateConfig(), workers=2)

See docs/curation.md for the steps, their options and the papers behind them.

The names are loaded on first use: ``pretrain.config`` imports ``pretrain.data.curate.config``, which
runs this file first, and every training process (a torchrun restart included) would otherwise import
the whole runner (executors, readers, formats, the dedup store) that training never calls.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pretrain.data.curate.config import CurateConfig
    from pretrain.data.curate.execution.runner import curate
    from pretrain.data.curate.execution.stats import print_funnel

__all__ = ["CurateConfig", "curate", "print_funnel"]

_HOME = {"CurateConfig": "config", "curate": "execution.runner", "print_funnel": "execution.stats"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'pretrain.data.curate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pretrain.data.curate.{_HOME[name]}"), name)
