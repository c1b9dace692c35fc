"""WARC / WET (``.warc``, ``.warc.gz``, ``.wet``, ``.wet.gz``): one shard per file, its captures read by
:mod:`pretrain.data.curate.io.warc` (domain ``web``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pretrain.data.curate.io.formats.base import InputFormat, Quarantined, Shard, register_format, unreadable
from pretrain.data.curate.io.warc import WARC_SUFFIXES, read_warc_records
from pretrain.data.record import Document


@register_format("warc")
class Warc(InputFormat):
    suffixes = WARC_SUFFIXES
    sharding = "file"

    def read_records(self, path: Path, shard: Shard, text_field: str, domain: str,
                     max_bytes: int) -> Iterator[Document | Quarantined]:
        source = shard.files[0]
        try:
            yield from read_warc_records(path, source, max_bytes,
                                         lambda src, why, url, raw=None: Quarantined(src, why, "web", url, raw))
        except OSError as exc:  # gone or unreadable since the run was planned
            yield Quarantined(source, unreadable(exc), "web")
