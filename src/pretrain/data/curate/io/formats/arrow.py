"""Arrow (``.arrow``: a ``datasets`` save_to_disk file, see :mod:`..hfdatasets`), read as Parquet is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain.data.curate.io.formats.base import register_format
from pretrain.data.curate.io.formats.parquet import Parquet
from pretrain.data.curate.io.hfdatasets import ARROW_SUFFIX, ArrowFile


@register_format("arrow")
class Arrow(Parquet):
    suffixes = (ARROW_SUFFIX,)
    label = "Arrow"

    def open_table(self, path: Path) -> Any:
        return ArrowFile(path)
