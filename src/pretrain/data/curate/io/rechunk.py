"""Re-chunking a compressed record file whose frames are too long to cut it into shards.

A zstd frame or gzip member can only be decoded from its start, so a file written as one stream (what
plain ``gzip`` and ``zstd`` do) could only be one shard: one task for a file of many GB, whatever the
number of workers. The planning task, which has just read the file once to count its lines, then reads
it once more and writes a copy of the same decompressed bytes as zstd frames (level 1, fast) that start
exactly at the shards' first records, under the output's ``work/inputs/``. Each shard seeks to its
frame in the copy, while its records keep naming the original file and line. The copies are deleted
when the first segment of the pipeline is done (the later segments read the intermediate shards).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path

import zstandard

from pretrain.data.curate.io import storage
from pretrain.data.curate.io.formats import Cuts
from pretrain.data.curate.io.lines import compression, frame_chunks
from pretrain.data.curate.io.outstore import RemoteOut

INPUTS_DIR = "work/inputs"


def _write_frames(path, dest: Path, starts: list[int]) -> list[int]:
    """Copy the decompressed stream of ``path`` into ``dest`` as zstd frames starting at the
    decompressed offsets ``starts`` (after the first); the compressed offset of each frame."""
    kind = compression(path)
    cctx = zstandard.ZstdCompressor(level=1)
    offsets, pos, nxt = [0], 0, 1
    with open(dest, "wb") as f:
        obj = cctx.compressobj()
        for chunk in frame_chunks(path, kind):
            start = 0
            while nxt < len(starts) and starts[nxt] < pos + len(chunk):
                cut = starts[nxt] - pos
                f.write(obj.compress(chunk[start:cut]))
                f.write(obj.flush())  # ends the frame
                offsets.append(f.tell())
                obj, start, nxt = cctx.compressobj(), cut, nxt + 1
            f.write(obj.compress(chunk[start:]))
            pos += len(chunk)
        f.write(obj.flush())
    return offsets


def rechunk(path, cuts: Cuts, out: str) -> Cuts:
    """Write the re-chunked copy of ``path`` for ``cuts.fine`` under the output ``out`` (a local
    directory or an fsspec URL); the cuts that read it."""
    assert cuts.fine is not None
    records = [r for r, _ in cuts.fine]
    starts = [off for _, off in cuts.fine[:-1]]
    rel = f"{INPUTS_DIR}/{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.jsonl.zst"
    if storage.is_url(out):
        with tempfile.TemporaryDirectory(prefix="pretrain-rechunk-") as tmp:
            local = Path(tmp) / "copy.jsonl.zst"
            offsets = _write_frames(path, local, starts)
            RemoteOut(out).put(local, rel)
        where = f"{out.rstrip('/')}/{rel}"
    else:
        dest = Path(out) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp_dest = dest.with_name(f".tmp-{dest.name}")
        offsets = _write_frames(path, tmp_dest, starts)
        tmp_dest.replace(dest)
        where = str(dest)
    return dataclasses.replace(cuts, starts=records, offsets=offsets + [-1], skips=[0] * len(records), fine=None,
                               read_from=where)


__all__ = ["INPUTS_DIR", "rechunk"]
