"""The input format registry: one class per file format, found by the file name's suffix.

A format says how its files are cut into shards and how a shard is read; :mod:`..readers` plans and
reads through it and never switches on a format name. Every module of this package is imported when
the registry is first asked, so a new format is one file::

    # pretrain/data/curate/io/formats/csv.py
    import csv

    from pretrain.data.curate.io.formats.base import InputFormat, Quarantined, register_format
    from pretrain.data.record import Document

    @register_format("csv")
    class Csv(InputFormat):
        suffixes = (".csv",)
        sharding = "file"  # one shard per file, read whole

        def read_records(self, path, shard, text_field, domain, max_bytes):
            with open(path, newline="", encoding="utf-8") as f:
                for row, rec in enumerate(csv.DictReader(f)):
                    src = f"{path}@{row}"
                    if not rec.get(text_field):
                        yield Quarantined(src, f"missing text field {text_field!r}", domain)
                    else:
                        yield Document(text=rec[text_field], source=src, domain=domain)

Sharding: ``records`` (a record file cut by :meth:`InputFormat.cuts` into record ranges, read in
parallel: JSONL, Parquet, Arrow), ``file`` (one shard per file: WARC) or ``files`` (each file is one
document, and files are grouped into shards: text, HTML). The ``fallback`` format (text) takes every
name no other format claims. Reading never raises on bad data: a record that cannot be read is
yielded as a :class:`Quarantined` naming file, line and reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pretrain.data.curate.io import payload as pl
from pretrain.data.record import Document, doc_id
from pretrain.registry import Registry

FORMATS: Registry[InputFormat] = Registry("input format", "pretrain.data.curate.io.formats")
F = TypeVar("F", bound="type[InputFormat]")


@dataclass
class Quarantined:
    """A record that could not be read: where it was, why, and its bytes (``payload``, see :mod:`..payload`;
    None when nothing could be read: an unreadable or special file)."""

    source: str
    reason: str
    domain: str = "unknown"
    snippet: str = ""
    payload: dict[str, Any] | None = None

    def to_document(self) -> Document:
        meta: dict[str, Any] = {"reason": self.reason, "quarantined_by": "reader"}
        if self.payload is not None:
            meta["payload"] = self.payload
        # the id names this record, not its (often empty) snippet: source is unique per record
        ident = doc_id(json.dumps([self.source, self.reason, self.payload], sort_keys=True, ensure_ascii=False))
        return Document(text=self.snippet, source=self.source, domain=self.domain, id=ident, meta=meta)


@dataclass
class Shard:
    """A unit of work: either a slice of one record file or a group of whole files."""

    index: int
    kind: str  # "records" (one file: a record slice, or the whole file) or "files" (whole-file documents)
    files: list[str]
    start: int = 0
    stop: int = -1  # record slice [start, stop); -1 = to the end
    start_byte: int = -1  # where to seek for record `start`: its offset in an uncompressed file, the start
    # of its frame in a compressed one (-1 = unknown: read from line 1)
    skip_bytes: int = 0  # decompressed bytes from `start_byte` to record `start`
    read_from: str = ""  # a re-chunked copy of the file to read (same bytes; see rechunk.py)

    def describe(self) -> str:
        if self.kind == "records":
            return f"{self.files[0]}[{self.start}:{self.stop}]"
        return f"{len(self.files)} files from {self.files[0]}"


@dataclass
class Cuts:
    """Where the shards of one record file start: record indices (then the record count), the byte a
    shard seeks to (-1 = unknown) and the decompressed bytes it then skips. ``fine``: for a compressed
    file whose frames are too long to cut it near the limits, the (record, decompressed offset) of each
    cut it would get if it could be entered anywhere (see :mod:`..rechunk`); ``read_from``: a copy of the
    file to read the records from (same bytes, in frames at the cuts)."""

    starts: list[int]
    offsets: list[int]
    skips: list[int]
    fine: list[tuple[int, int]] | None = None
    read_from: str = ""


class InputFormat:
    """One input file format. Record formats implement :meth:`cuts` and :meth:`read_records`; whole-file
    formats :meth:`read_document`."""

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    sharding: ClassVar[str] = "files"
    fallback: ClassVar[bool] = False

    def matches(self, name: str) -> bool:
        return name.lower().endswith(self.suffixes)

    def cuts(self, path: Path, max_bytes: int, records_per_shard: int, bytes_per_shard: int) -> Cuts:
        """Where this file's shards start (may raise: the caller makes an unreadable file one shard)."""
        raise NotImplementedError

    def read_records(self, path: Path, shard: Shard, text_field: str, domain: str,
                     max_bytes: int) -> Iterator[Document | Quarantined]:
        raise NotImplementedError

    def read_document(self, path: Path, domain: str, max_bytes: int) -> Document | Quarantined:
        raise NotImplementedError


def register_format(name: str) -> Callable[[F], F]:
    """Class decorator: register an :class:`InputFormat` under ``name``."""
    def wrap(cls: F) -> F:
        cls.name = name
        FORMATS.add(name, cls(), ident=cls)
        return cls
    return wrap


def formats() -> dict[str, InputFormat]:
    return FORMATS.all()


def fallback_format() -> InputFormat:
    """The format of every name no other format claims (one text document per file)."""
    return next(fmt for fmt in FORMATS.all().values() if fmt.fallback)


def format_of(path: str | Path) -> InputFormat:
    """The format of a file, by the suffix of its name; the fallback (one text document) otherwise."""
    name = str(path)
    for fmt in FORMATS.all().values():
        if not fmt.fallback and fmt.matches(name):
            return fmt
    return fallback_format()


def snippet(raw: bytes, limit: int = 500) -> str:
    """The start of a record's bytes as readable text (NUL bytes spelled out), for a quarantine record."""
    return raw[:limit].decode("utf-8", "replace").replace("\x00", "\\x00")


def _head(line: str | bytes) -> str:
    """The first 500 characters of a record's line (a JSONL line is kept as bytes until it is needed)."""
    return (line.decode("utf-8") if isinstance(line, bytes) else line)[:500]


def record_to_doc(rec: object, src: str, text_field: str, default_domain: str,
                  line: str | bytes, kept: dict[str, Any] | None = None) -> Document | Quarantined:
    """A parsed record as a Document, or a Quarantined keeping ``kept`` (its payload; default: ``line``)."""
    def bad(reason: str, domain: str, snippet: str | None = None) -> Quarantined:
        raw = line.encode("utf-8") if isinstance(line, str) else line
        return Quarantined(src, reason, domain, _head(line) if snippet is None else snippet,
                           kept if kept is not None else pl.inline(raw))

    if not isinstance(rec, dict):
        return bad("record is not a JSON object", default_domain)
    domain = str(rec.get("domain") or default_domain)
    if text_field not in rec:
        return bad(f"missing text field {text_field!r}", domain)
    text = rec[text_field]
    if text is None:
        return bad(f"text field {text_field!r} is null", domain)
    if not isinstance(text, str):
        return bad(f"text field {text_field!r} is not a string", domain)
    if "\x00" in text:
        return bad("NUL byte in text", domain, text[:500].replace("\x00", "\\x00"))
    if not text or text.isspace():
        return bad("empty text", domain, "")
    try:
        if not text.isascii():  # an ASCII string cannot hold a lone surrogate
            text.encode("utf-8")
    except UnicodeEncodeError:
        return bad("invalid Unicode (lone surrogate) in text", domain, text[:500].encode("utf-8", "replace").decode())
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
    meta = dict(meta)
    meta["input"] = src
    return Document(text=text, source=str(rec.get("source") or src), domain=domain,
                    id=str(rec.get("id") or ""), lang=str(rec.get("lang") or ""), meta=meta)


def unreadable(exc: OSError) -> str:
    """The reason for a file that vanished or cannot be read since the run was planned."""
    if isinstance(exc, FileNotFoundError):
        return "vanished (no such file)"
    return f"unreadable: {(exc.strerror or str(exc)).lower()}"
