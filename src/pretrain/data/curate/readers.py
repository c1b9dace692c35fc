"""Input discovery, sharding and reading: every input record becomes a Document or a quarantine record.

Formats by extension: ``.jsonl`` / ``.jsonl.gz`` / ``.jsonl.zst`` (and ``.json`` lines), ``.parquet``,
``.html`` / ``.htm`` (domain 'web' and ``meta.format = 'html'``), ``.warc`` / ``.warc.gz`` / ``.wet`` /
``.wet.gz`` (see :mod:`pretrain.data.curate.warc`), and anything else read as one text document per file
(source code, Markdown, plain text). Inputs may be local paths or fsspec URLs (:mod:`.storage`). Reading never raises on bad data: invalid UTF-8,
binary or empty files, NUL bytes, malformed JSON lines, records without the text field, lines over the
size limit, truncated compressed streams, symlink loops and broken symlinks each yield a :class:`Quarantined` naming file, line and
reason, and reading goes on with the next record where that is possible.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from pretrain.data.curate import storage
from pretrain.data.curate.inputs import expand_inputs, link_problem
from pretrain.data.curate.warc import is_warc, read_warc_records
from pretrain.data.record import Document, loads

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".json.gz", ".json.zst")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
PARQUET_SUFFIXES = (".parquet",)
_CHUNK = 1 << 16  # below glibc's mmap threshold: a 1 MB chunk was a fresh mmap per read, its pages zeroed


@dataclass
class Quarantined:
    """A record that could not be read: where it was and why."""

    source: str
    reason: str
    domain: str = "unknown"
    snippet: str = ""

    def to_document(self) -> Document:
        return Document(text=self.snippet, source=self.source, domain=self.domain,
                        meta={"reason": self.reason, "quarantined_by": "reader"})


@dataclass
class Shard:
    """A unit of work: either a slice of one record file or a group of whole files."""

    index: int
    kind: str  # "records" (jsonl/parquet slice) or "files"
    files: list[str]
    start: int = 0
    stop: int = -1  # record slice [start, stop); -1 = to the end
    start_byte: int = -1  # offset of record `start` in an uncompressed file (-1 = unknown: count lines)

    def describe(self) -> str:
        if self.kind == "records":
            return f"{self.files[0]}[{self.start}:{self.stop}]"
        return f"{len(self.files)} files from {self.files[0]}"


def file_format(path: str | Path) -> str:
    name = str(path).lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(HTML_SUFFIXES):
        return "html"
    if is_warc(name):
        return "warc"
    return "text"


def domain_for(path: str | Path, globs: dict[str, str], default: str = "prose") -> str:
    """First glob (in the mapping's order) matching the file name or its path; else ``default``."""
    full = path.as_posix() if isinstance(path, Path) else str(path)
    name = full.rstrip("/").rsplit("/", 1)[-1]
    for pattern, domain in globs.items():
        if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(full, pattern):
            return domain
    return default


class TruncatedInput(Exception):
    pass


def _zstd_chunks(path: Path) -> Iterator[bytes]:
    """Decompressed chunks of a (multi-frame) .zst file; raises TruncatedInput if the last frame is cut."""
    with storage.open_binary(path) as f:
        dctx = zstandard.ZstdDecompressor()
        obj = dctx.decompressobj()
        pending = b""
        while True:
            data = pending or f.read(_CHUNK)
            pending = b""
            if not data:
                break
            try:
                out = obj.decompress(data)
            except zstandard.ZstdError as exc:
                raise TruncatedInput(f"corrupt zstd stream: {exc}") from None
            if out:
                yield out
            if obj.eof:
                pending = obj.unused_data
                obj = dctx.decompressobj()
                if not pending and not (pending := f.read(_CHUNK)):
                    return
        if not obj.eof:
            raise TruncatedInput("truncated zstd stream (file ends inside a frame)")


def iter_lines(path: Path, max_bytes: int, offset: int = 0, first_line: int = 0) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw line) of a plain/.gz/.zst file; ``None`` for a line over ``max_bytes``, which is
    skipped without holding it in memory. Raises TruncatedInput at a cut or corrupt compressed stream.
    ``offset`` / ``first_line``: start at that byte (uncompressed files only), numbered from that line."""
    if offset > 0 and not path.name.endswith((".zst", ".gz")):
        def seeked() -> Iterator[bytes]:
            with storage.open_binary(path) as f:
                f.seek(offset)
                while chunk := f.read(_CHUNK):
                    yield chunk
        chunks: Iterator[bytes] = seeked()
    elif path.name.endswith(".zst"):
        chunks = _zstd_chunks(path)
    else:
        def plain() -> Iterator[bytes]:
            try:
                with storage.open_binary(path) as raw:
                    f = gzip.GzipFile(fileobj=raw, mode="rb") if path.name.endswith(".gz") else raw
                    # read1: what is decodable so far, so records before a cut gzip stream still come out
                    read = f.read1 if hasattr(f, "read1") else f.read
                    while chunk := read(_CHUNK):
                        yield chunk
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
                raise TruncatedInput(f"corrupt or truncated compressed stream: {exc}") from None
        chunks = plain()
    lineno = first_line if offset > 0 else 0
    carry: list[bytes] = []  # the start of a line that continues in the next chunk
    carried = 0
    too_long = False
    for chunk in chunks:
        lines = chunk.split(b"\n")  # one C call per chunk, not a Python step per line
        last = lines.pop()
        if lines and (carry or too_long):  # the line that began in earlier chunks ends here
            head = lines[0]
            carried += len(head)
            too_long = too_long or carried > max_bytes
            lines[0] = b"" if too_long else b"".join([*carry, head])
            if too_long:
                lineno += 1
                yield lineno, None
                lines.pop(0)
            carry, carried, too_long = [], 0, False
        for line in lines:
            lineno += 1
            yield lineno, (line if len(line) <= max_bytes else None)
        if last:
            carried += len(last)
            if carried > max_bytes:
                too_long, carry = True, []
            elif not too_long:
                carry.append(last)
    if carry or too_long:
        yield lineno + 1, (None if too_long else b"".join(carry))


def _parquet_source(path):
    return storage.open_binary(path) if storage.is_remote(path) else path


def record_cuts(path: Path, max_bytes: int, records_per_shard: int, bytes_per_shard: int,
                with_offsets: bool = False) -> list[int] | tuple[list[int], list[int]] | None:
    """Record indices where shards of a record file start (a new shard every ``records_per_shard``
    records or ``bytes_per_shard`` bytes, whichever comes first), followed by the record count; None when
    the file cannot be read to the end (it becomes one shard that quarantines the bad part at read time).
    ``with_offsets``: also the byte offset of each cut in an uncompressed file (-1 where unknown), so a
    shard seeks to its first record instead of reading the file from line 1."""
    try:
        if file_format(path) == "parquet":
            import pyarrow.parquet as pq

            n = pq.ParquetFile(_parquet_source(path)).metadata.num_rows
            pcuts = list(range(0, n, records_per_shard)) + [n] if n else [0, 0]
            return (pcuts, [-1] * len(pcuts)) if with_offsets else pcuts
        seekable = not path.name.endswith((".zst", ".gz"))
        cuts, offsets, n, size, pos = [0], [0], 0, 0, 0
        for _, raw in iter_lines(path, max_bytes):
            if n - cuts[-1] >= records_per_shard or size >= bytes_per_shard:
                cuts.append(n)
                offsets.append(pos if seekable else -1)
                size = 0
            size += len(raw) if raw is not None else max_bytes
            pos = pos + len(raw) + 1 if raw is not None and pos >= 0 else -1  # a skipped line: length unknown
            n += 1
        return (cuts + [n], offsets + [-1]) if with_offsets else cuts + [n]
    except Exception:  # noqa: BLE001 - anything unreadable becomes one shard that quarantines at read time
        return None


def plan_shards(files: list[Path], records_per_shard: int, files_per_shard: int, max_bytes: int,
                bytes_per_shard: int = 1 << 62, cuts: dict | None = None) -> list[Shard]:
    """Cut the inputs into shards, independently of the number of workers (so outputs do not depend on it).
    ``cuts``: :func:`record_cuts` (with offsets) of the record files, already computed (in parallel)."""
    shards: list[Shard] = []
    loose: list[str] = []

    def flush() -> None:
        while loose:
            shards.append(Shard(len(shards), "files", loose[:files_per_shard]))
            del loose[:files_per_shard]

    for f in files:
        if file_format(f) == "warc" and not link_problem(f):
            flush()
            shards.append(Shard(len(shards), "records", [str(f)], 0, -1))
        elif file_format(f) in ("jsonl", "parquet") and not link_problem(f):
            flush()
            got = cuts[str(f)] if cuts and str(f) in cuts else record_cuts(
                f, max_bytes, records_per_shard, bytes_per_shard, with_offsets=True)
            fcuts, offs = got if got is not None else (None, None)
            if fcuts is None or len(fcuts) <= 2:
                shards.append(Shard(len(shards), "records", [str(f)], 0, -1))
            else:
                for a, b, o in zip(fcuts[:-1], fcuts[1:], offs[:-1], strict=True):
                    shards.append(Shard(len(shards), "records", [str(f)], a, -1 if b == fcuts[-1] else b, o))
        else:
            loose.append(str(f))
            if len(loose) >= files_per_shard:
                flush()
    flush()
    return shards


def _snippet(raw: bytes, limit: int = 500) -> str:
    return raw[:limit].decode("utf-8", "replace").replace("\x00", "\\x00")


def _binary(raw: bytes) -> bool:
    """NUL bytes, or over 30% control characters in the first 8 KB, mean a binary file."""
    head = raw[:8192]
    if b"\x00" in head:
        return True
    ctrl = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return bool(head) and ctrl / len(head) > 0.3


def read_file_document(path: Path, domain: str, max_bytes: int) -> Document | Quarantined:
    src = f"{path}"
    if problem := link_problem(path):
        return Quarantined(src, problem, domain)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Quarantined(src, f"file too large ({size} bytes > {max_bytes})", domain)
        raw = path.read_bytes()
    except OSError as exc:
        return Quarantined(src, f"unreadable: {exc.strerror or exc}", domain)
    if not raw.strip():
        return Quarantined(src, "empty file", domain)
    if _binary(raw):
        return Quarantined(src, "binary file", domain, _snippet(raw, 100))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Quarantined(src, f"invalid UTF-8 at byte {exc.start}", domain, _snippet(raw))
    if text.startswith("\ufeff"):
        text = text[1:]
    meta = {"format": "html"} if file_format(path) == "html" else {}
    return Document(text=text, source=src, domain=domain, meta=meta)


def _head(line: str | bytes) -> str:
    """The first 500 characters of a record's line (a JSONL line is kept as bytes until it is needed)."""
    return (line.decode("utf-8") if isinstance(line, bytes) else line)[:500]


def _record_to_doc(rec: object, src: str, text_field: str, default_domain: str,
                   line: str | bytes) -> Document | Quarantined:
    if not isinstance(rec, dict):
        return Quarantined(src, "record is not a JSON object", default_domain, _head(line))
    domain = str(rec.get("domain") or default_domain)
    if text_field not in rec:
        return Quarantined(src, f"missing text field {text_field!r}", domain, _head(line))
    text = rec[text_field]
    if text is None:
        return Quarantined(src, f"text field {text_field!r} is null", domain, _head(line))
    if not isinstance(text, str):
        return Quarantined(src, f"text field {text_field!r} is not a string", domain, _head(line))
    if "\x00" in text:
        return Quarantined(src, "NUL byte in text", domain, text[:500].replace("\x00", "\\x00"))
    if not text or text.isspace():
        return Quarantined(src, "empty text", domain)
    try:
        if not text.isascii():  # an ASCII string cannot hold a lone surrogate
            text.encode("utf-8")
    except UnicodeEncodeError:
        return Quarantined(src, "invalid Unicode (lone surrogate) in text", domain,
                           text[:500].encode("utf-8", "replace").decode())
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
    meta = dict(meta)
    meta["input"] = src
    return Document(text=text, source=str(rec.get("source") or src), domain=domain,
                    id=str(rec.get("id") or ""), lang=str(rec.get("lang") or ""), meta=meta)


def read_jsonl_records(path: Path, start: int, stop: int, text_field: str, domain: str,
                       max_bytes: int, start_byte: int = -1) -> Iterator[Document | Quarantined]:
    lineno = 0
    try:
        # Seek to the shard's first record when its offset is known (otherwise read from line 1).
        offset, first = (start_byte, start) if start_byte > 0 else (0, 0)
        for lineno, raw in iter_lines(path, max_bytes, offset, first):
            idx = lineno - 1
            if idx < start:
                continue
            if stop >= 0 and idx >= stop:
                return
            src = f"{path}:{lineno}"
            if raw is None:
                yield Quarantined(src, f"line longer than {max_bytes} bytes", domain)
                continue
            if not raw or raw.isspace():
                yield Quarantined(src, "empty line", domain)
                continue
            try:
                rec = loads(raw)  # orjson, or json where they differ; invalid UTF-8 is found first
            except UnicodeDecodeError as exc:
                yield Quarantined(src, f"invalid UTF-8 at byte {exc.start}", domain, _snippet(raw))
                continue
            except json.JSONDecodeError as exc:
                yield Quarantined(src, f"malformed JSON: {exc.msg}", domain, raw.decode("utf-8")[:500])
                continue
            yield _record_to_doc(rec, src, text_field, domain, raw)
    except TruncatedInput as exc:
        if stop < 0 or lineno < stop:
            yield Quarantined(f"{path}:{lineno + 1}", str(exc), domain)


def read_parquet_records(path: Path, start: int, stop: int, text_field: str, domain: str) -> Iterator[Document | Quarantined]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(_parquet_source(path))
        names = pf.schema_arrow.names
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        yield Quarantined(str(path), f"unreadable Parquet: {str(exc).splitlines()[0][:200]}", domain)
        return
    if text_field not in names:
        # one record for the whole file, from its first shard only (its other shards yield nothing)
        if start == 0:
            rows = pf.metadata.num_rows
            yield Quarantined(str(path), f"missing text column {text_field!r} (columns: {', '.join(names)}; "
                              f"{rows} rows not read)", domain)
        return
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                if row >= start and (stop < 0 or row < stop):
                    yield _record_to_doc(rec, f"{path}@{row}", text_field, domain, "")
                row += 1
                if stop >= 0 and row >= stop:
                    return
    except Exception as exc:  # noqa: BLE001
        yield Quarantined(f"{path}@{row}", f"unreadable Parquet data: {str(exc).splitlines()[0][:200]}", domain)


def read_shard(shard: Shard, text_field: str, globs: dict[str, str], max_bytes: int,
               default_domain: str = "prose") -> Iterator[Document | Quarantined]:
    if shard.kind == "records":
        path = storage.as_path(shard.files[0])
        domain = domain_for(path, globs, default="default")
        if file_format(path) == "warc":
            yield from read_warc_records(path, shard.files[0], max_bytes,
                                         lambda src, why, url: Quarantined(src, why, "web", url))
        elif file_format(path) == "parquet":
            yield from read_parquet_records(path, shard.start, shard.stop, text_field, domain)
        else:
            yield from read_jsonl_records(path, shard.start, shard.stop, text_field, domain, max_bytes,
                                          shard.start_byte)
        return
    for name in shard.files:
        path = storage.as_path(name)
        yield read_file_document(path, domain_for(path, globs, default_domain), max_bytes)


__all__ = ["Quarantined", "Shard", "domain_for", "expand_inputs", "file_format", "link_problem", "plan_shards",
           "read_shard"]
