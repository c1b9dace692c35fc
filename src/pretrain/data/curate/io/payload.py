"""What a quarantine record keeps of the input it could not use: the payload.

Quarantine is where a bad record waits to be looked at, fixed and fed again, so it must hold the
record itself, byte for byte, not a description. ``meta.payload`` of a quarantine record is one of:

- inline: ``{"length": N, "utf8": "..."}`` when the bytes are valid UTF-8, else
  ``{"length": N, "base64": "..."}``: the exact bytes of the record (a JSONL line without its newline,
  a whole text file, the recoverable part of a line a truncated stream cut, a Parquet row as JSON);
- a reference, for a record over ``max_record_bytes`` (which is never held in memory):
  ``{"length": N, "file": PATH, "offset": O, "prefix_base64": "..."}`` with the first
  :data:`~pretrain.data.curate.io.lines.PREFIX_BYTES` bytes; in a compressed file the offset counts
  decompressed bytes from the compressed byte ``frame_offset`` where its frame starts;
- a WARC capture over ``max_record_bytes``: ``{"length": N, "file": PATH, "warc_offset": O,
  "prefix_base64": "..."}``, the record's offset in the stream (a gzip member start in a .warc.gz), the
  length of its content block and that block's first bytes (a smaller capture's block is kept inline).

:func:`payload_bytes` gives the bytes back (a reference is read back from its file, decompressing from
its frame). A line read from a re-chunked copy of a compressed file (deleted after the run) is located
by its line number instead: ``offset`` is null and ``line`` is set.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any


def inline(raw: bytes) -> dict[str, Any]:
    """The exact bytes, as text when they are valid UTF-8 (readable in the record), else base64."""
    try:
        return {"length": len(raw), "utf8": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"length": len(raw), "base64": base64.b64encode(raw).decode("ascii")}


def reference(file: str, offset: int, length: int, prefix: bytes, frame_offset: int | None = None) -> dict[str, Any]:
    """Where a record too large to keep is: file, byte offset, length and its first bytes."""
    out: dict[str, Any] = {"length": length, "file": file, "offset": offset,
                           "prefix_base64": base64.b64encode(prefix).decode("ascii")}
    if frame_offset is not None:
        out["frame_offset"] = frame_offset
    return out


def warc_reference(file: str, record_offset: int, length: int, prefix: bytes) -> dict[str, Any]:
    """A WARC capture too large to keep: its file, the record's offset in the stream (a gzip member start
    in a .warc.gz), the length of its content block and the block's first bytes."""
    return {"length": length, "file": file, "warc_offset": record_offset,
            "prefix_base64": base64.b64encode(prefix).decode("ascii")}


def whole_file(path, prefix_bytes: int = 4096) -> dict[str, Any] | None:
    """A reference to a whole file quarantined as one record (a Parquet file that cannot be read, or
    has no text column): its size and first bytes; None if it cannot be read at all."""
    from pretrain.data.curate.io import storage

    try:
        with storage.open_binary(path) as f:
            head = f.read(prefix_bytes)
        return reference(str(path), 0, int(path.stat().st_size), head)
    except OSError:
        return None


def line_reference(path, src: str, where: tuple[int, int, bytes], offset: int, compressed: bool,
                   copy: bool) -> dict[str, Any]:
    """The reference of an over-long JSONL line ``src`` (``file:line``): ``where`` is (start, length,
    prefix) counted from ``offset``, a byte of the file (uncompressed) or the start of a frame
    (compressed). A line read from a re-chunked copy (deleted after the run) is located by its line
    number alone."""
    start, length, prefix = where
    if not compressed:
        return reference(str(path), offset + start, length, prefix)
    ref = reference(str(path), start, length, prefix, frame_offset=offset)
    if copy:
        ref.update(offset=None, frame_offset=None, line=int(src.rsplit(":", 1)[1]))
    return ref


def row(rec: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row (no bytes of its own on disk) as the UTF-8 of its JSON; binary values as base64."""
    def enc(v: Any) -> Any:
        if isinstance(v, bytes | bytearray):
            return {"base64": base64.b64encode(bytes(v)).decode("ascii")}
        return str(v)

    return inline(json.dumps(rec, ensure_ascii=False, sort_keys=True, default=enc).encode("utf-8"))


def payload_bytes(payload: dict[str, Any]) -> bytes:
    """The quarantined bytes: inline ones decoded, a reference into an uncompressed file read back."""
    if "utf8" in payload:
        return payload["utf8"].encode("utf-8")
    if "base64" in payload:
        return base64.b64decode(payload["base64"])
    if "warc_offset" in payload:
        return _warc_block(Path(payload["file"]), payload["warc_offset"])
    if payload.get("offset") is None:
        raise ValueError(f"payload in {payload['file']} is located by line {payload.get('line')} only")
    if "frame_offset" in payload:
        return _decompressed(Path(payload["file"]), payload["frame_offset"], payload["offset"], payload["length"])
    with open(payload["file"], "rb") as f:
        f.seek(payload["offset"])
        return f.read(payload["length"])


def _warc_block(path: Path, record_offset: int) -> bytes:
    """The content block (an HTTP response's body) of the WARC record at ``record_offset``."""
    from fastwarc.warc import ArchiveIterator

    from pretrain.data.curate.io.storage import open_binary

    with open_binary(path) as f:
        f.seek(record_offset)
        for rec in ArchiveIterator(f, parse_http=True):
            return rec.reader.read()
    raise ValueError(f"no WARC record at byte {record_offset} of {path}")


def _decompressed(path: Path, frame_offset: int, skip: int, length: int) -> bytes:
    """``length`` decompressed bytes, ``skip`` bytes after the frame that starts at ``frame_offset``."""
    from pretrain.data.curate.io.lines import compression, frame_chunks

    parts, need = [], length
    for chunk in frame_chunks(path, compression(path), frame_offset):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        piece = chunk[skip:skip + need]
        skip = 0
        parts.append(piece)
        need -= len(piece)
        if not need:
            break
    return b"".join(parts)


__all__ = ["inline", "line_reference", "payload_bytes", "reference", "row", "warc_reference", "whole_file"]
