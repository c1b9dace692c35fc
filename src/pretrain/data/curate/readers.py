"""Input discovery, sharding and reading: every input record becomes a Document or a quarantine record.

Formats by extension: ``.jsonl`` / ``.jsonl.gz`` / ``.jsonl.zst`` (and ``.json`` lines), ``.parquet``, ``.arrow``
(a ``datasets`` save_to_disk file: :mod:`.hfdatasets`),
``.html`` / ``.htm`` (domain 'web' and ``meta.format = 'html'``), ``.warc`` / ``.warc.gz`` / ``.wet`` /
``.wet.gz`` (see :mod:`pretrain.data.curate.warc`), and anything else read as one text document per file
(source code, Markdown, plain text). Inputs may be local paths or fsspec URLs (:mod:`.storage`). Reading never raises on bad data: invalid UTF-8,
binary or empty files, NUL bytes, malformed JSON lines, records without the text field, lines over the
size limit, truncated compressed streams, symlink loops, broken symlinks, special files (FIFOs, sockets,
devices), unreadable and vanished files each yield a :class:`Quarantined` naming file, line and reason,
with the record's bytes as its payload (see :mod:`.payload`), and reading goes on with the next record
where that is possible. Every read is bounded: by the size a file had when opened, and lines by
``max_bytes``.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pretrain.data.curate import payload as pl
from pretrain.data.curate import storage
from pretrain.data.curate.hfdatasets import ARROW_SUFFIX, ArrowFile
from pretrain.data.curate.inputs import expand_inputs, input_problem, link_problem
from pretrain.data.curate.lines import PREFIX_BYTES, TruncatedInput, compression, iter_lines, read_head
from pretrain.data.curate.warc import is_warc, read_warc_records
from pretrain.data.record import Document, doc_id, loads

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".json.gz", ".json.zst")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
PARQUET_SUFFIXES = (".parquet",)


@dataclass
class Quarantined:
    """A record that could not be read: where it was, why, and its bytes (``payload``, see :mod:`.payload`;
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
    kind: str  # "records" (jsonl/parquet slice) or "files"
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


def file_format(path: str | Path) -> str:
    name = str(path).lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(ARROW_SUFFIX):
        return "arrow"  # a `datasets` save_to_disk file (hfdatasets.py)
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


def _parquet_source(path):
    return storage.open_binary(path) if storage.is_remote(path) else path


def _table_file(path):
    """A Parquet file, or a `datasets` .arrow file behind the same interface."""
    import pyarrow.parquet as pq

    return ArrowFile(path) if file_format(path) == "arrow" else pq.ParquetFile(_parquet_source(path))


@dataclass
class Cuts:
    """Where the shards of one record file start: record indices (then the record count), the byte a
    shard seeks to (-1 = unknown) and the decompressed bytes it then skips. ``fine``: for a compressed
    file whose frames are too long to cut it near the limits, the (record, decompressed offset) of each
    cut it would get if it could be entered anywhere (see :mod:`.rechunk`); ``read_from``: a copy of the
    file to read the records from (same bytes, in frames at the cuts)."""

    starts: list[int]
    offsets: list[int]
    skips: list[int]
    fine: list[tuple[int, int]] | None = None
    read_from: str = ""


def record_cuts(path: Path, max_bytes: int, records_per_shard: int, bytes_per_shard: int) -> Cuts | None:
    """Shards of a record file: a new one every ``records_per_shard`` records or ``bytes_per_shard``
    bytes, whichever comes first; None when the file cannot be read (it becomes one shard that
    quarantines it at read time). A compressed stream cut or corrupt after some records keeps its cuts
    up to there, and its last shard quarantines the rest.

    No shard reads its file from line 1. In an uncompressed file a cut can be at any line. A compressed
    file can only be entered where a zstd frame or gzip member starts, so its cuts are at the first line
    that starts in a new frame once a limit is reached (the part of the frame before that line is
    skipped): a file of many small frames (``pzstd``, ``bgzip``, concatenated parts) is cut about as an
    uncompressed one. When that leaves a shard over twice the limits (one long frame: plain ``gzip`` /
    ``zstd`` output), ``fine`` holds the cuts it should have, for :func:`.rechunk.rechunk`."""
    try:
        if file_format(path) in ("parquet", "arrow"):
            n = _table_file(path).metadata.num_rows
            pcuts = list(range(0, n, records_per_shard)) + [n] if n else [0, 0]
            return Cuts(pcuts, [-1] * len(pcuts), [0] * len(pcuts))
        compressed = bool(compression(path))
        frames: list[tuple[int, int]] = []  # (compressed offset, decompressed offset) of each frame start
        ends = [0]
        cuts, offsets, skips, n, size, line_start, last_frame = [0], [0], [0], 0, 0, 0, 0
        fine, fsize, coarse, complete = [(0, 0)], 0, False, True
        lines = iter_lines(path, max_bytes, frames=frames, ends=ends)
        while True:
            try:
                _, raw = next(lines)
            except StopIteration:
                break
            except TruncatedInput:  # the shards before the cut stand; the last one quarantines it when read
                complete = False
                break
            if compressed and (n - fine[-1][0] >= records_per_shard or fsize >= bytes_per_shard):
                fine.append((n, line_start))
                fsize = 0
            if n - cuts[-1] >= 2 * records_per_shard or size >= 2 * bytes_per_shard:
                coarse = True  # no frame started for a while: this shard is getting too long
            if n - cuts[-1] >= records_per_shard or size >= bytes_per_shard:
                if not compressed:
                    cuts.append(n)
                    offsets.append(line_start)
                    skips.append(0)
                    size = 0
                else:
                    fr = bisect.bisect_right(frames, line_start, key=lambda x: x[1]) - 1
                    if fr > last_frame:  # this line starts in a frame no shard starts in yet
                        cuts.append(n)
                        offsets.append(frames[fr][0])
                        skips.append(line_start - frames[fr][1])
                        size, last_frame = 0, fr
            nbytes = len(raw) if raw is not None else max_bytes
            size += nbytes
            fsize += nbytes
            line_start = ends[0]
            n += 1
        # a cut stream is never re-chunked: its copy would end cleanly and hide the cut from the reader
        return Cuts(cuts + [n], offsets + [-1], skips + [0], fine + [(n, line_start)] if coarse and complete else None)
    except Exception:  # noqa: BLE001 - anything unreadable becomes one shard that quarantines at read time
        return None


def plan_shards(files: list[Path], records_per_shard: int, files_per_shard: int, max_bytes: int,
                bytes_per_shard: int = 1 << 62, cuts: dict | None = None) -> list[Shard]:
    """Cut the inputs into shards, independently of the number of workers (so outputs do not depend on it).
    ``cuts``: :func:`record_cuts` of the record files, already computed (in parallel, and re-chunked)."""
    shards: list[Shard] = []
    loose: list[str] = []

    def flush() -> None:
        while loose:
            shards.append(Shard(len(shards), "files", loose[:files_per_shard]))
            del loose[:files_per_shard]

    for f in files:
        if file_format(f) == "warc" and not input_problem(f):
            flush()
            shards.append(Shard(len(shards), "records", [str(f)], 0, -1))
        elif file_format(f) in ("jsonl", "parquet", "arrow") and not input_problem(f):
            flush()
            got = cuts[str(f)] if cuts and str(f) in cuts else record_cuts(
                f, max_bytes, records_per_shard, bytes_per_shard)
            if got is None or len(got.starts) <= 2:
                shards.append(Shard(len(shards), "records", [str(f)], 0, -1, read_from=got.read_from if got else ""))
            else:
                st, last = got.starts, got.starts[-1]
                for a, b, o, sk in zip(st[:-1], st[1:], got.offsets[:-1], got.skips[:-1], strict=True):
                    shards.append(Shard(len(shards), "records", [str(f)], a, -1 if b == last else b, o, sk,
                                        got.read_from))
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
    if problem := input_problem(path):
        return Quarantined(src, problem, domain)
    try:
        raw, size = read_head(path, max_bytes)
    except FileNotFoundError:
        return Quarantined(src, "vanished (no such file)", domain)
    except OSError as exc:
        return Quarantined(src, f"unreadable: {(exc.strerror or str(exc)).lower()}", domain)
    if size > max_bytes:
        return Quarantined(src, f"file too large ({size} bytes > {max_bytes})", domain,
                           payload=pl.reference(src, 0, size, raw[:PREFIX_BYTES]))
    kept = pl.inline(raw)
    if not raw.strip():
        return Quarantined(src, "empty file", domain, payload=kept)
    if _binary(raw):
        return Quarantined(src, "binary file", domain, _snippet(raw, 100), kept)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Quarantined(src, f"invalid UTF-8 at byte {exc.start}", domain, _snippet(raw), kept)
    if text.startswith("\ufeff"):
        text = text[1:]
    meta = {"format": "html"} if file_format(path) == "html" else {}
    return Document(text=text, source=src, domain=domain, meta=meta)


def _head(line: str | bytes) -> str:
    """The first 500 characters of a record's line (a JSONL line is kept as bytes until it is needed)."""
    return (line.decode("utf-8") if isinstance(line, bytes) else line)[:500]


def _record_to_doc(rec: object, src: str, text_field: str, default_domain: str,
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


def read_jsonl_records(path: Path, start: int, stop: int, text_field: str, domain: str,
                       max_bytes: int, start_byte: int = -1, skip_bytes: int = 0,
                       read_from: str = "") -> Iterator[Document | Quarantined]:
    lineno = 0
    # Seek to the shard's first record when its offset is known (otherwise read from line 1).
    offset, skip, first = (start_byte, skip_bytes, start) if start_byte >= 0 and start > 0 else (0, 0, 0)
    compressed = bool(compression(path))
    oversize: list = []
    try:
        source = storage.as_path(read_from) if read_from else path
        for lineno, raw in iter_lines(source, max_bytes, offset, first, skip, oversize=oversize):
            idx = lineno - 1
            if idx < start:
                continue
            if stop >= 0 and idx >= stop:
                return
            src = f"{path}:{lineno}"
            if raw is None:
                yield Quarantined(src, f"line longer than {max_bytes} bytes", domain,
                                  payload=pl.line_reference(path, src, oversize[0], offset, compressed, bool(read_from)))
                continue
            if not raw or raw.isspace():
                yield Quarantined(src, "empty line", domain, payload=pl.inline(raw))
                continue
            try:
                rec = loads(raw)  # orjson, or json where they differ; invalid UTF-8 is found first
            except UnicodeDecodeError as exc:
                yield Quarantined(src, f"invalid UTF-8 at byte {exc.start}", domain, _snippet(raw), pl.inline(raw))
                continue
            except json.JSONDecodeError as exc:
                yield Quarantined(src, f"malformed JSON: {exc.msg}", domain, raw.decode("utf-8")[:500],
                                  pl.inline(raw))
                continue
            yield _record_to_doc(rec, src, text_field, domain, raw)
    except TruncatedInput as exc:
        if stop < 0 or lineno < stop:
            src = f"{path}:{lineno + 1}"
            kept = (pl.inline(exc.pending) if exc.pending is not None else
                    pl.line_reference(path, src, oversize[0], offset, compressed, bool(read_from)))
            yield Quarantined(src, str(exc), domain, _snippet(exc.pending or b""), kept)
    except OSError as exc:  # unreadable or gone since the run was planned: the rest of the file, as one record
        if stop < 0 or lineno < stop:
            why = ("vanished (no such file)" if isinstance(exc, FileNotFoundError)
                   else f"unreadable: {(exc.strerror or str(exc)).lower()}")
            yield Quarantined(f"{path}:{lineno + 1}", why, domain)


def read_parquet_records(path: Path, start: int, stop: int, text_field: str, domain: str) -> Iterator[Document | Quarantined]:
    kind = "Arrow" if file_format(path) == "arrow" else "Parquet"
    try:
        pf = _table_file(path)
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
                    yield _record_to_doc(rec, f"{path}@{row}", text_field, domain, "", pl.row(rec))
                row += 1
                if stop >= 0 and row >= stop:
                    return
    except Exception as exc:  # noqa: BLE001
        yield Quarantined(f"{path}@{row}", f"unreadable {kind} data: {str(exc).splitlines()[0][:200]}", domain)


def read_shard(shard: Shard, text_field: str, globs: dict[str, str], max_bytes: int,
               default_domain: str = "prose") -> Iterator[Document | Quarantined]:
    if shard.kind == "records":
        path = storage.as_path(shard.files[0])
        domain = domain_for(path, globs, default="default")
        if file_format(path) == "warc":
            try:
                yield from read_warc_records(path, shard.files[0], max_bytes,
                                             lambda src, why, url, raw=None: Quarantined(src, why, "web", url, raw))
            except OSError as exc:  # gone or unreadable since the run was planned
                yield Quarantined(shard.files[0], "vanished (no such file)" if isinstance(exc, FileNotFoundError)
                                  else f"unreadable: {(exc.strerror or str(exc)).lower()}", "web")
        elif file_format(path) in ("parquet", "arrow"):
            yield from read_parquet_records(path, shard.start, shard.stop, text_field, domain)
        else:
            yield from read_jsonl_records(path, shard.start, shard.stop, text_field, domain, max_bytes,
                                          shard.start_byte, shard.skip_bytes, shard.read_from)
        return
    for name in shard.files:
        path = storage.as_path(name)
        yield read_file_document(path, domain_for(path, globs, default_domain), max_bytes)


__all__ = ["Cuts", "Quarantined", "Shard", "domain_for", "expand_inputs", "file_format", "input_problem",
           "link_problem", "plan_shards",
           "read_shard"]
