"""Compressed inputs cut into several shards: each shard enters the file at a zstd frame / gzip member
and never decompresses the part of the file before it (issue 14: shards used to re-read from line 1);
a file of one long frame is re-chunked into a copy whose frames start at the shards."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.execution.runner import cuts_task
from pretrain.data.curate.io import lines, storage
from pretrain.data.curate.io.readers import Quarantined, expand_inputs, plan_shards, read_shard
from pretrain.data.record import Document


def _compress(kind: str, data: bytes, frame_bytes: int) -> bytes:
    """``data`` as independent frames / members of ``frame_bytes`` raw bytes each, cut mid-line on purpose
    (``bgzip`` and ``pzstd`` cut by size, not by line); frame_bytes = 0: one frame."""
    pieces = [data[i:i + frame_bytes] for i in range(0, len(data), frame_bytes)] if frame_bytes else [data]
    if kind == "gz":
        return b"".join(gzip.compress(p, mtime=0) for p in pieces)
    cctx = zstandard.ZstdCompressor()
    return b"".join(cctx.compress(p) for p in pieces)


def _records(n: int) -> bytes:
    return "".join(json.dumps({"id": f"r{i}", "text": f"record {i} " + "é" * (i % 7) + " words" * (i % 13)},
                              ensure_ascii=False) + "\n" for i in range(n)).encode()


class _Counting:
    """The real file object, counting the compressed bytes read through it and the lowest offset read."""

    def __init__(self, f, log: list):
        self.f, self.log = f, log
        log.append([0, None])

    def read(self, n=-1):
        at = self.f.tell()
        data = self.f.read(n)
        if data:
            entry = self.log[-1]
            entry[0] += len(data)
            entry[1] = at if entry[1] is None else min(entry[1], at)
        return data

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_multi_frame_file_sharded_without_rereading(tmp_path: Path, monkeypatch, kind):
    raw = _records(400)
    path = tmp_path / f"big.jsonl.{kind}"
    path.write_bytes(_compress(kind, raw, 1500))
    size = path.stat().st_size
    monkeypatch.setattr(lines, "_COMPRESSED_READ", 256)  # small reads, so over-reading shows in the counts
    files = expand_inputs([path])
    whole = plan_shards(files, 10**6, 10, 4096)
    shards = plan_shards(files, 25, 10, 4096)
    assert len(whole) == 1 and len(shards) >= 10
    assert all(s.start_byte > 0 for s in shards[1:]) and any(s.skip_bytes > 0 for s in shards)

    log: list = []
    real_open = storage.open_binary
    monkeypatch.setattr(storage, "open_binary", lambda p: _Counting(real_open(p), log))
    got = [d for s in shards for d in read_shard(s, "text", {}, 4096)]
    per_shard = list(log)
    ref = [d for s in whole for d in read_shard(s, "text", {}, 4096)]

    # the same records, in order, each once (conservation: 400 lines in, 400 documents out)
    assert all(isinstance(d, Document) for d in got) and len(got) == 400
    assert [(d.id, d.text, d.meta["input"]) for d in got] == [(d.id, d.text, d.meta["input"]) for d in ref]
    assert [d.id for d in got] == [f"r{i}" for i in range(400)]
    # no shard reads the file before its own first frame, and all shards together read it about once
    # (each at most one frame and one read past its end), where re-reading from the start costs ~n/2 files
    assert len(per_shard) == len(shards)
    frame_max = max(len(_compress(kind, raw[i:i + 1500], 0)) for i in range(0, len(raw), 1500))
    ends = [s.start_byte for s in shards[1:]] + [size]
    for s, end, (nbytes, lowest) in zip(shards, ends, per_shard, strict=True):
        assert lowest == (s.start_byte if s.start else 0)
        assert nbytes <= end - max(s.start_byte, 0) + frame_max + 2 * 256
    total = sum(n for n, _ in per_shard)
    assert total <= size + len(shards) * (frame_max + 2 * 256), (total, size)
    assert total < 2 * size


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_single_frame_file_is_rechunked_into_shards(tmp_path: Path, monkeypatch, kind):
    raw = _records(300)
    path = tmp_path / f"one.jsonl.{kind}"
    path.write_bytes(_compress(kind, raw, 0))  # one frame: plain `gzip` / `zstd` output
    files = expand_inputs([path])
    assert len(plan_shards(files, 25, 10, 4096)) == 1  # its frames alone allow no cut
    out = tmp_path / "out"
    cuts = cuts_task(str(path), 4096, 25, 1 << 30, str(out))
    assert cuts.read_from.startswith(str(out / "work" / "inputs")) and len(cuts.starts) == 13
    shards = plan_shards(files, 25, 10, 4096, cuts={str(path): cuts})
    assert len(shards) == 12 and all(s.start_byte > 0 and s.skip_bytes == 0 for s in shards[1:])

    log: list = []
    real_open = storage.open_binary
    monkeypatch.setattr(lines, "_COMPRESSED_READ", 256)
    monkeypatch.setattr(storage, "open_binary", lambda p: _Counting(real_open(p), log))
    got = [d for s in shards for d in read_shard(s, "text", {}, 4096)]
    assert [d.id for d in got] == [f"r{i}" for i in range(300)]  # all records, in order, each once
    assert [d.meta["input"] for d in got] == [f"{path}:{i + 1}" for i in range(300)]  # named after the original
    copy = Path(cuts.read_from).stat().st_size
    ends = [s.start_byte for s in shards[1:]] + [copy]
    for s, end, (nbytes, lowest) in zip(shards, ends, log, strict=True):  # each shard reads its own frame
        assert lowest == max(s.start_byte, 0) and nbytes <= end - max(s.start_byte, 0) + 2 * 256


def test_rechunked_run_matches_the_uncompressed_file(tmp_path: Path):
    raw = _records(120)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "in.jsonl").write_bytes(raw)
    (tmp_path / "b" / "in.jsonl.gz").write_bytes(_compress("gz", raw, 0))
    cfg = CurateConfig(shard_docs=20, keep_work=True, steps=[{"type": "normalize"}, {"type": "exact_dedup"}])
    plain = curate([tmp_path / "a"], tmp_path / "out-a", cfg, workers=1, progress=False)
    gz = curate([tmp_path / "b"], tmp_path / "out-b", cfg, workers=1, progress=False)
    assert gz["shards"] == plain["shards"] == 6
    assert [gz[k] for k in ("documents_in", "kept", "removed", "quarantined")] == \
        [plain[k] for k in ("documents_in", "kept", "removed", "quarantined")]
    assert gz["documents_in"] == gz["kept"] + gz["removed"] + gz["quarantined"] == 120
    assert not (tmp_path / "out-b" / "work" / "inputs").exists()  # the copy is gone after the first segment

    def texts(out):
        return [(r["id"], r["text"]) for f in sorted((out / "data").glob("*.zst"))
                for r in (json.loads(x) for x in zstandard.ZstdDecompressor().decompressobj()
                          .decompress(f.read_bytes()).decode().splitlines())]

    assert texts(tmp_path / "out-b") == texts(tmp_path / "out-a")


def test_truncated_multi_frame_file_keeps_every_record_before_the_cut(tmp_path: Path):
    raw = _records(200)
    data = _compress("zst", raw, 1000)
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(data[: len(data) - 40])  # the last frame loses its end
    out = tmp_path / "out"
    stats = curate([path], out, CurateConfig(shard_docs=30, steps=[{"type": "normalize"}]), workers=1,
                   progress=False)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    assert stats["shards"] >= 4
    # the shards before the cut stand; the last one keeps every record before the cut, then quarantines it
    items = [d for s in plan_shards(expand_inputs([path]), 30, 10, 4096) for d in read_shard(s, "text", {}, 4096)]
    assert isinstance(items[-1], Quarantined) and "truncated zstd" in items[-1].reason
    assert [d.id for d in items[:-1]] == [f"r{i}" for i in range(len(items) - 1)] and len(items) > 150
