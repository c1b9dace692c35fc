"""Sharded writers: JSONL.zst (the record schema of pretrain.data.record) and Parquet.

A writer writes to a temporary name and renames on close, so a shard file that exists is complete; a
writer that received no document leaves no file.
"""

from __future__ import annotations

import json
from pathlib import Path

from pretrain.data.record import Document, dumps, open_bytes

_FLUSH_BYTES = 1 << 20


class JsonlWriter:
    """Records as JSON lines (:func:`pretrain.data.record.dumps`), gathered into ~1 MB writes: one call
    into the compressor per megabyte, not per record. The lines go straight into one bytearray: a list
    of pending lines measured 2-3x slower (each line's bytes object stays allocated until the flush)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".tmp-{self.path.name}")
        self.f = None
        self.count = 0
        self.pending = bytearray()

    def write(self, doc: Document) -> None:
        self.pending += dumps(doc.to_dict())
        self.pending += b"\n"
        self.count += 1
        if len(self.pending) >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = open_bytes(self.tmp, "wb")
        self.f.write(self.pending)
        self.pending.clear()

    def close(self) -> None:
        if self.pending:
            self._flush()
        if self.f is not None:
            self.f.close()
            self.tmp.replace(self.path)
            self.f = None


class ParquetWriter:
    """Columns id, text, source, domain, lang and meta (a JSON string), in row groups of ``batch`` rows."""

    def __init__(self, path: str | Path, batch: int = 1000):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".tmp-{self.path.name}")
        self.rows: list[dict] = []
        self.batch = batch
        self.writer = None
        self.count = 0

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows, schema=pa.schema(
            [(k, pa.string()) for k in ("id", "text", "source", "domain", "lang", "meta")]))
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        self.writer.write_table(table)
        self.rows = []

    def write(self, doc: Document) -> None:
        d = doc.to_dict()
        d["meta"] = json.dumps(d["meta"], ensure_ascii=False)
        self.rows.append(d)
        self.count += 1
        if len(self.rows) >= self.batch:
            self._flush()

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.tmp.replace(self.path)
            self.writer = None


def open_writer(path_without_suffix: Path, fmt: str):
    if fmt == "parquet":
        return ParquetWriter(path_without_suffix.with_name(path_without_suffix.name + ".parquet"))
    return JsonlWriter(path_without_suffix.with_name(path_without_suffix.name + ".jsonl.zst"))
