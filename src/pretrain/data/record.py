"""The document record used by every data stage, and JSONL(.zst/.gz) reading and writing.

A record is one JSON object per line: ``id`` (stable hash of the text), ``text``, ``source`` (where it
came from: path plus line or offset), ``domain``, ``lang`` and ``meta`` (free-form dict).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zstandard


def doc_id(text: str) -> str:
    """Stable id of a document: the first 16 hex digits of the SHA-1 of its UTF-8 text."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class Document:
    text: str
    source: str = ""
    domain: str = "default"
    id: str = ""
    lang: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = doc_id(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "source": self.source, "domain": self.domain,
                "lang": self.lang, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any], text_field: str = "text") -> Document:
        text = d[text_field]
        if not isinstance(text, str):
            raise ValueError(f"field {text_field!r} is not a string")
        return cls(text=text, source=str(d.get("source", "")), domain=str(d.get("domain") or "default"),
                   id=str(d.get("id") or ""), lang=str(d.get("lang") or ""), meta=dict(d.get("meta") or {}))


def _has_float(obj: Any) -> bool:
    """A float anywhere in a decoded JSON value (type checks, not isinstance: this runs per record)."""
    t = type(obj)
    if t is dict:
        obj = obj.values()
    elif t is not list:
        return t is float
    for v in obj:
        t = type(v)
        if t is str or t is int or v is None or t is bool:
            continue
        if t is float or _has_float(v):
            return True
    return False


def loads(line: str | bytes) -> Any:
    """``json.loads(line)``, computed by orjson (4-10x faster) wherever the two agree.

    orjson rejects what Python's json accepts beyond RFC 8259 (NaN, Infinity, lone surrogate escapes,
    numbers beyond a double), and reads an integer beyond 64 bits as a float; those lines, and any line
    with a float, are parsed again by json, so the result and any error message are json's. Bytes are
    UTF-8 (invalid UTF-8 raises UnicodeDecodeError, as ``line.decode("utf-8")`` would)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    else:
        if not _has_float(obj):
            return obj
    return json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON of ``obj``, one line: what ``json.dumps(obj, ensure_ascii=False)`` says, without its
    spaces after separators. orjson where it agrees; json for floats (orjson writes NaN and Infinity as
    null), integers beyond 64 bits and non-string keys (orjson refuses those)."""
    if not _has_float(obj):
        try:
            return orjson.dumps(obj)
        except TypeError:
            pass
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def open_bytes(path: str | Path, mode: str = "rb"):
    """Open a plain, .gz or .zst file as bytes (``rb``) or for writing (``wb``)."""
    path = Path(path)
    if path.suffix == ".zst":
        if "r" in mode:
            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
        return zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb"))
    if path.suffix == ".gz":
        return gzip.open(path, mode)
    return open(path, mode)


def open_text(path: str | Path, mode: str = "rt"):
    """Open a plain, .gz or .zst file as text (``rt``) or for writing (``wt``)."""
    path = Path(path)
    if path.suffix == ".zst":
        if "r" in mode:
            raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
            return io.TextIOWrapper(raw, encoding="utf-8")
        raw = zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb"))
        return io.TextIOWrapper(raw, encoding="utf-8")
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def write_jsonl(path: str | Path, docs: Iterable[Document | dict]) -> int:
    """Write documents (or dicts) as JSON lines, atomically; compression by extension. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the suffix, so compression matches
    n = 0
    with open_bytes(tmp, "wb") as f:
        for d in docs:
            f.write(dumps(d.to_dict() if isinstance(d, Document) else d) + b"\n")
            n += 1
    tmp.replace(path)
    return n


def read_jsonl(path: str | Path, text_field: str = "text") -> Iterator[Document]:
    """Read documents from a JSONL(.gz/.zst) file; a bad line raises ValueError naming file and line."""
    with open_text(path, "rt") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Document.from_dict(loads(line), text_field)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad record: {exc}") from None


_READ_CHUNK = 1 << 16  # below glibc's mmap threshold (128 KB): chunks reuse heap memory; 1 MB chunks
# were each a fresh mmap whose pages the kernel zeroes (+1.5 us per 700-byte record)


def read_records(path: str | Path, text_field: str = "text") -> Iterator[Document]:
    """:func:`read_jsonl` for files this package wrote (:func:`write_jsonl`, the curation writers), whose
    lines end in ``\\n`` only (JSON escapes every newline inside a string): the file is read as bytes in
    64 KB chunks and split in C, with no text decoding layer. A bad line raises ValueError naming file
    and line."""
    with open_bytes(path, "rb") as f:
        carry: list[bytes] = []  # the start of a line that continues in the next chunk (a list: no
        lineno = 0               # quadratic re-copying of a line longer than many chunks)
        while True:
            chunk = f.read(_READ_CHUNK)
            if chunk:
                lines = chunk.split(b"\n")
                if len(lines) == 1:
                    carry.append(chunk)
                    continue
                if carry:
                    lines[0] = b"".join([*carry, lines[0]])
                last = lines.pop()
                carry = [last] if last else []
            else:
                lines, carry = [b"".join(carry)], []
            for line in lines:
                lineno += 1
                if not line or line.isspace():
                    continue
                try:
                    yield Document.from_dict(loads(line), text_field)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{lineno}: bad record: {exc}") from None
            if not chunk:
                return


def read_parquet(path: str | Path) -> Iterator[Document]:
    """Documents of a Parquet file (a ``text`` column; ``id``, ``source``, ``domain``, ``lang`` when present);
    a missing column or a non-string text raises ValueError naming the file (and the row)."""
    import pyarrow.parquet as pq

    return read_columns(pq.ParquetFile(path), path, "Parquet")


def read_columns(pf: Any, path: str | Path, kind: str) -> Iterator[Document]:
    """Documents of an opened columnar file: anything with ``schema_arrow.names`` and
    ``iter_batches(columns=, batch_size=)`` as a pyarrow ParquetFile has (``kind`` names it in errors)."""
    names = set(pf.schema_arrow.names)
    if "text" not in names:
        raise ValueError(f"{path}: {kind} file has no 'text' column (columns: {', '.join(sorted(names))})")
    cols = [c for c in ("text", "id", "source", "domain", "lang") if c in names]
    row = 0
    for batch in pf.iter_batches(columns=cols, batch_size=4096):
        data = batch.to_pydict()
        for i, text in enumerate(data["text"]):
            if not isinstance(text, str):
                raise ValueError(f"{path}@{row + i}: bad record: 'text' is not a string")
            yield Document(text=text, id=str(data.get("id", [""] * (i + 1))[i] or ""),
                           source=str(data.get("source", [""] * (i + 1))[i] or f"{path}@{row + i}"),
                           domain=str(data.get("domain", [None] * (i + 1))[i] or "default"),
                           lang=str(data.get("lang", [""] * (i + 1))[i] or ""))
        row += batch.num_rows


def is_document_file(path: Path) -> bool:
    """A file this package reads documents from: JSONL (optionally .gz / .zst) or Parquet."""
    return path.is_file() and (".jsonl" in path.name or path.suffix == ".parquet")


def read_file(path: str | Path) -> Iterator[Document]:
    """The documents of one JSONL or Parquet file (by suffix)."""
    p = Path(path)
    return read_parquet(p) if p.suffix == ".parquet" else read_jsonl(p)


def read_dir(path: str | Path) -> Iterator[Document]:
    """Every document of every JSONL or Parquet file below ``path`` (or of ``path`` itself), in sorted
    path order: the one reader of curated output, whatever ``data.curate.output_format`` wrote."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if is_document_file(x))
    for f in files:
        yield from read_file(f)
