"""Parquet (``.parquet``, a ``text`` column): cut into row ranges by the row count in its metadata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pretrain.data.curate.io import payload as pl
from pretrain.data.curate.io import storage
from pretrain.data.curate.io.formats.base import (
    Cuts,
    InputFormat,
    Quarantined,
    Shard,
    record_to_doc,
    register_format,
)
from pretrain.data.record import Document


@register_format("parquet")
class Parquet(InputFormat):
    suffixes = (".parquet",)
    sharding = "records"
    label: ClassVar[str] = "Parquet"  # how quarantine reasons name the format

    def open_table(self, path: Path) -> Any:
        """An object with ``metadata.num_rows``, ``schema_arrow`` and ``iter_batches`` (pyarrow's ParquetFile)."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(storage.open_binary(path) if storage.is_remote(path) else path)

    def cuts(self, path: Path, max_bytes: int, records_per_shard: int, bytes_per_shard: int) -> Cuts:
        n = self.open_table(path).metadata.num_rows
        starts = list(range(0, n, records_per_shard)) + [n] if n else [0, 0]
        return Cuts(starts, [-1] * len(starts), [0] * len(starts))

    def read_records(self, path: Path, shard: Shard, text_field: str, domain: str,
                     max_bytes: int) -> Iterator[Document | Quarantined]:
        start, stop, kind = shard.start, shard.stop, self.label
        try:
            pf = self.open_table(path)
            names = pf.schema_arrow.names
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            yield Quarantined(str(path), f"unreadable {kind}: {str(exc).splitlines()[0][:200]}", domain,
                              payload=pl.whole_file(path))
            return
        if text_field not in names:
            # one record for the whole file, from its first shard only (its other shards yield nothing)
            if start == 0:
                rows = pf.metadata.num_rows
                yield Quarantined(str(path), f"missing text column {text_field!r} (columns: {', '.join(names)}; "
                                  f"{rows} rows not read)", domain, payload=pl.whole_file(path))
            return
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=1024):
                for rec in batch.to_pylist():
                    if row >= start and (stop < 0 or row < stop):
                        yield record_to_doc(rec, f"{path}@{row}", text_field, domain, "", pl.row(rec))
                    row += 1
                    if stop >= 0 and row >= stop:
                        return
        except Exception as exc:  # noqa: BLE001
            yield Quarantined(f"{path}@{row}", f"unreadable {kind} data: {str(exc).splitlines()[0][:200]}", domain)
