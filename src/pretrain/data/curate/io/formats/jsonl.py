"""JSON lines (``.jsonl``, ``.ndjson``, plain, gzip or zstd): one record per line, cut into record ranges at
lines (or, compressed, where a frame starts) and read from the shard's first record on."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path

from pretrain.data.curate.io import payload as pl
from pretrain.data.curate.io import storage
from pretrain.data.curate.io.formats.base import (
    Cuts,
    InputFormat,
    Quarantined,
    Shard,
    record_to_doc,
    register_format,
    snippet,
    unreadable,
)
from pretrain.data.curate.io.lines import TruncatedInput, compression, iter_lines
from pretrain.data.record import Document, loads

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".json.gz", ".json.zst")


@register_format("jsonl")
class Jsonl(InputFormat):
    suffixes = JSONL_SUFFIXES
    sharding = "records"

    def cuts(self, path: Path, max_bytes: int, records_per_shard: int, bytes_per_shard: int) -> Cuts:
        """A new shard every ``records_per_shard`` records or ``bytes_per_shard`` bytes. An uncompressed
        file can be cut at any line; a compressed one only where a zstd frame or gzip member starts, so its
        cuts are at the first line that starts in a new frame once a limit is reached (the part of the
        frame before that line is skipped). When that leaves a shard over twice the limits (one long
        frame: plain ``gzip`` / ``zstd`` output), ``fine`` holds the cuts it should have, for
        :func:`..rechunk.rechunk`. A stream cut or corrupt after some records keeps its cuts up to there."""
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

    def read_records(self, path: Path, shard: Shard, text_field: str, domain: str,
                     max_bytes: int) -> Iterator[Document | Quarantined]:
        yield from read_jsonl_records(path, shard.start, shard.stop, text_field, domain, max_bytes,
                                      shard.start_byte, shard.skip_bytes, shard.read_from)


def read_jsonl_records(path: Path, start: int, stop: int, text_field: str, domain: str,
                       max_bytes: int, start_byte: int = -1, skip_bytes: int = 0,
                       read_from: str = "") -> Iterator[Document | Quarantined]:
    """Records ``start`` .. ``stop - 1`` (-1: to the end) of a JSONL file, seeking to ``start_byte`` when known."""
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
                yield Quarantined(src, f"invalid UTF-8 at byte {exc.start}", domain, snippet(raw), pl.inline(raw))
                continue
            except json.JSONDecodeError as exc:
                yield Quarantined(src, f"malformed JSON: {exc.msg}", domain, raw.decode("utf-8")[:500],
                                  pl.inline(raw))
                continue
            yield record_to_doc(rec, src, text_field, domain, raw)
    except TruncatedInput as exc:
        if stop < 0 or lineno < stop:
            src = f"{path}:{lineno + 1}"
            kept = (pl.inline(exc.pending) if exc.pending is not None else
                    pl.line_reference(path, src, oversize[0], offset, compressed, bool(read_from)))
            yield Quarantined(src, str(exc), domain, snippet(exc.pending or b""), kept)
    except OSError as exc:  # unreadable or gone since the run was planned: the rest of the file, as one record
        if stop < 0 or lineno < stop:
            yield Quarantined(f"{path}:{lineno + 1}", unreadable(exc), domain)
