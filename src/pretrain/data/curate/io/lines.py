"""Lines of a plain, gzip or zstd file, streamed, with the seek points of a compressed one.

A compressed file can be entered only where a zstd frame or a gzip member starts: :func:`frame_chunks`
decodes each frame with a fresh decompressor and reports where the frames start, so the planner can cut
shards there and a shard can start decoding at its own frame (see ``formats.jsonl.Jsonl.cuts``).
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard

from pretrain.data.curate.io import storage

_CHUNK = 1 << 16  # per read or decoder call: larger chunks were a fresh mmap (zeroed pages) each time
_COMPRESSED_READ = 1 << 18  # smaller: a shard stops mid-read, and what it read past its end is wasted
PREFIX_BYTES = 4096  # of an over-long line: what a quarantine record keeps of it besides where it is


class TruncatedInput(Exception):
    """A compressed stream that is cut or corrupt; ``pending``: the bytes of the line it cut, if any."""

    pending: bytes | None = b""


def compression(path) -> str:
    """``"zst"``, ``"gz"`` or ``""`` (uncompressed), from the file name."""
    name = path.name
    return "zst" if name.endswith(".zst") else "gz" if name.endswith(".gz") else ""


def _decoder(kind: str):
    """A fresh decompressor for one zstd frame or one gzip member, and a call that feeds it."""
    if kind == "zst":
        obj = zstandard.ZstdDecompressor().decompressobj()

        def feed(buf: bytes) -> tuple[bytes, bytes]:
            out = obj.decompress(buf)
            return out, (obj.unused_data if obj.eof else b"")
    else:
        obj = zlib.decompressobj(wbits=31)  # gzip header and trailer

        def feed(buf: bytes) -> tuple[bytes, bytes]:
            out = obj.decompress(buf, _CHUNK)  # bounded output: a highly compressed member is not inflated whole
            return out, (obj.unused_data if obj.eof else obj.unconsumed_tail)
    return obj, feed


def frame_chunks(path, kind: str, offset: int = 0, frames: list | None = None) -> Iterator[bytes]:
    """Decompressed chunks of a .zst (any number of frames) or .gz (any number of members) file, from the
    compressed byte ``offset``, which must be where a frame / member starts. Each frame is decoded by a
    fresh decompressor, so a reader can start at any frame without decoding what comes before it.
    ``frames``: (compressed offset, uncompressed offset from ``offset``) of each frame start is appended
    as it is reached (the seek points of the file). Raises TruncatedInput at a cut or corrupt stream."""
    errors = (zstandard.ZstdError,) if kind == "zst" else (zlib.error,)
    with storage.open_binary(path) as f:
        left = _size_at_open(f)
        if offset:
            f.seek(offset)
            left = None if left is None else max(0, left - offset)
        pos, produced, buf, obj, feed = offset, 0, b"", None, None
        while True:
            if not buf:
                buf = _bounded(f, _COMPRESSED_READ, left)
                left = None if left is None else left - len(buf)
            if not buf:
                if obj is None:
                    return
                tail = obj.flush() if kind == "gz" else b""
                if tail:
                    produced += len(tail)
                    yield tail
                if not obj.eof:
                    raise TruncatedInput("truncated zstd stream (file ends inside a frame)" if kind == "zst" else
                                         "truncated compressed stream (gzip; file ends inside a member)")
                return
            if obj is None:
                if kind == "gz" and buf[:1] == b"\x00":  # NUL padding between or after members, as gzip allows
                    rest = buf.lstrip(b"\x00")
                    pos, buf = pos + len(buf) - len(rest), rest
                    continue
                obj, feed = _decoder(kind)
                if frames is not None:
                    frames.append((pos, produced))
            try:
                out, rest = feed(buf)
            except errors as exc:
                raise TruncatedInput(f"corrupt {'zstd' if kind == 'zst' else 'compressed (gzip)'} stream: {exc}") from None
            pos += len(buf) - len(rest)
            buf = rest
            if out:
                produced += len(out)
                yield out
            if obj.eof:
                obj = None


def _size_at_open(f) -> int | None:
    """How many bytes a local file held when opened (reads stop there, so a file that grows while it is
    read, or a device that never ends, cannot keep a reader busy forever); None for a remote object,
    whose size is fixed. A local input that is not a regular file is refused (OSError)."""
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    return st.st_size


def _bounded(f, size: int, left: int | None) -> bytes:
    return f.read(size if left is None else min(size, left))


def _plain_chunks(path, offset: int) -> Iterator[bytes]:
    """An uncompressed file from byte ``offset``, in chunks, up to the size it had when opened."""
    with storage.open_binary(path) as f:
        left = _size_at_open(f)
        if offset:
            f.seek(offset)
            left = None if left is None else max(0, left - offset)
        while chunk := _bounded(f, _CHUNK, left):
            left = None if left is None else left - len(chunk)
            yield chunk


def read_head(path, max_bytes: int) -> tuple[bytes, int]:
    """A whole file of up to ``max_bytes`` and its size; for a larger one, its first PREFIX_BYTES and
    size. Never reads more than ``max_bytes`` + 1 bytes, so a file that grows while read cannot hold it."""
    with storage.open_binary(path) as f:
        raw = f.read(max_bytes + 1)
        if len(raw) <= max_bytes:
            return raw, len(raw)
        return raw[:PREFIX_BYTES], max(path.stat().st_size, len(raw))


def iter_lines(path: Path, max_bytes: int, offset: int = 0, first_line: int = 0, skip: int = 0,
               frames: list | None = None, ends: list | None = None,
               oversize: list | None = None) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw line) of a plain/.gz/.zst file; ``None`` for a line over ``max_bytes``, which is
    skipped without holding it in memory. Raises TruncatedInput at a cut or corrupt compressed stream,
    with ``exc.pending``: the bytes of the line it cut (None if that line was over the limit).
    ``offset``: start at that byte (of an uncompressed file, or where a frame of a compressed one starts),
    then drop ``skip`` decompressed bytes; lines are numbered from ``first_line`` when either is set.
    ``frames``: see :func:`frame_chunks`. ``ends``: ``ends[0]`` is set to the offset just past each line
    before it is yielded (counted from where reading started, so it is known even for a skipped line).
    ``oversize``: ``oversize[0]`` is set to (start offset, length, first PREFIX_BYTES bytes) of each
    over-long line before its None is yielded (offsets counted as for ``ends``), so a quarantine record
    can say where the line is without holding it."""
    kind = compression(path)
    chunks = frame_chunks(path, kind, offset, frames) if kind else _plain_chunks(path, offset)
    lineno = first_line if offset > 0 or skip > 0 else 0
    carry: list[bytes] = []  # the start of a line that goes on in the next chunk
    carried = 0
    too_long = False
    start = 0  # stream offset where the carried line starts
    prefix = b""  # the first PREFIX_BYTES of an over-long carried line
    pos = 0  # stream offset of the start of the current chunk's text
    try:
        for chunk in chunks:
            if skip:
                cut = min(skip, len(chunk))
                skip -= cut
                pos += cut
                chunk = chunk[cut:]
                if not chunk:
                    continue
            parts = chunk.split(b"\n")  # one C call per chunk rather than a Python step per line
            last = parts.pop()
            for i, part in enumerate(parts):
                if i == 0 and (carry or too_long):  # a line begun in earlier chunks ends here
                    carried += len(part)
                    if not too_long and carried > max_bytes:
                        too_long, prefix = True, b"".join([*carry, part[:PREFIX_BYTES]])[:PREFIX_BYTES]
                    line = None if too_long else b"".join([*carry, part])
                    if too_long and oversize is not None:
                        oversize[:] = [(start, carried, prefix)]
                    carry, carried, too_long = [], 0, False
                else:
                    line = part if len(part) <= max_bytes else None
                    if line is None and oversize is not None:
                        oversize[:] = [(pos, len(part), part[:PREFIX_BYTES])]
                pos += len(part) + 1
                lineno += 1
                if ends is not None:
                    ends[0] = pos
                yield lineno, line
            if last:
                if not carry and not too_long:
                    start = pos
                pos += len(last)
                carried += len(last)
                if carried > max_bytes and not too_long:
                    too_long, prefix = True, b"".join([*carry, last[:PREFIX_BYTES]])[:PREFIX_BYTES]
                    carry = []  # the rest of it is counted, never held
                elif not too_long:
                    carry.append(last)
    except TruncatedInput as exc:
        exc.pending = None if too_long else b"".join(carry)
        if too_long and oversize is not None:
            oversize[:] = [(start, carried, prefix)]
        raise
    if carry or too_long:
        if ends is not None:
            ends[0] = pos
        if too_long and oversize is not None:
            oversize[:] = [(start, carried, prefix)]
        yield lineno + 1, (None if too_long else b"".join(carry))
