"""The curation pipeline: raw files -> curated, deduplicated, decontaminated documents with stats.

    from pretrain.data.curate import CurateConfig, curate, print_funnel
    stats = curate(["raw/"], "curated/", CurateConfig(), workers=2)

See docs/curation.md for the steps, their options and the papers behind them.
"""

from pretrain.data.curate.config import CurateConfig
from pretrain.data.curate.execution.runner import curate
from pretrain.data.curate.execution.stats import print_funnel

__all__ = ["CurateConfig", "curate", "print_funnel"]
