"""Readers: formats, domains, sharding, and every bad-input case going to quarantine (never a crash)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from pretrain.data.curate.config import DEFAULT_DOMAIN_GLOBS
from pretrain.data.curate.io.readers import (
    Quarantined,
    domain_for,
    expand_inputs,
    iter_lines,
    plan_shards,
    read_shard,
)
from pretrain.data.record import Document

G = DEFAULT_DOMAIN_GLOBS


def read_all(paths, max_bytes=16384, records=1000, files=100):
    files_ = expand_inputs(paths)
    out = []
    for shard in plan_shards(files_, records, files, max_bytes):
        out.extend(read_shard(shard, "text", G, max_bytes))
    return out


def test_domains_from_globs():
    assert domain_for("a/b/x.py", G) == "code"
    assert domain_for("page.html", G) == "web"
    assert domain_for("README.md", G) == "prose"
    assert domain_for("data.weird", G, default="other") == "other"
    assert domain_for("src/x.py", {"src/*": "mine", "*.py": "code"}) == "mine"  # first match wins


def test_jsonl_plain_gz_zst_and_domain_kept(tmp_path: Path):
    recs = [{"text": f"doc {i}", "domain": "books", "source": f"s{i}", "meta": {"k": i}} for i in range(3)]
    data = "".join(json.dumps(r) + "\n" for r in recs).encode()
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    docs = read_all([tmp_path])
    assert len(docs) == 9 and all(isinstance(d, Document) for d in docs)
    assert {d.domain for d in docs} == {"books"}
    assert docs[0].source == "s0" and docs[0].meta["k"] == 0 and docs[0].meta["input"].endswith("a.jsonl:1")


def test_parquet_with_text_field_and_null_row(tmp_path: Path):
    pq.write_table(pa.table({"body": ["one", None, "three"]}), tmp_path / "t.parquet")
    files = expand_inputs([tmp_path])
    out = list(read_shard(plan_shards(files, 10, 10, 4096)[0], "body", G, 4096))
    assert [type(x).__name__ for x in out] == ["Document", "Quarantined", "Document"]
    assert out[1].source.endswith("t.parquet@1") and "is null" in out[1].reason
    missing = list(read_shard(plan_shards(files, 10, 10, 4096)[0], "text", G, 4096))
    assert len(missing) == 1 and "missing text column" in missing[0].reason


def test_bad_inputs_quarantined(mixed_dir: Path):
    items = read_all([mixed_dir])
    q = {Path(x.source.split(":")[0].split("@")[0]).name + ":" + x.reason.split(" (")[0].split(":")[0]
         for x in items if isinstance(x, Quarantined)}
    assert "bad_utf8.txt:invalid UTF-8 at byte 12" in q
    assert "blob.bin:binary file" in q
    assert "empty.txt:empty file" in q
    assert "books.jsonl:malformed JSON" in q
    assert "books.jsonl:NUL byte in text" in q
    assert "books.jsonl:missing text field 'text'" in q
    assert "books.jsonl:line longer than 16384 bytes" in q
    assert any(s.startswith("cut.jsonl.zst:truncated zstd stream") for s in q)
    assert "wiki.parquet:text field 'text' is null" in q
    good_cut = [d for d in items if isinstance(d, Document) and "cut.jsonl.zst" in d.meta.get("input", "")]
    assert 0 < len(good_cut) < 40  # records before the cut are kept
    # line numbers are named
    malformed = [x for x in items if isinstance(x, Quarantined) and "malformed" in x.reason][0]
    assert malformed.source.endswith("books.jsonl:7")


def test_huge_line_not_held_in_memory(tmp_path: Path):
    p = tmp_path / "h.jsonl"
    p.write_bytes(b'{"text": "' + b"a" * 3_000_000 + b'"}\n{"text": "ok"}\n')
    lines = list(iter_lines(p, 1 << 16))
    assert lines[0] == (1, None) and lines[1][0] == 2 and b"ok" in lines[1][1]


def test_truncated_gzip(tmp_path: Path):
    data = gzip.compress(b"".join(json.dumps({"text": f"line {i}"}).encode() + b"\n" for i in range(2000)))
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    items = read_all([tmp_path])
    assert isinstance(items[-1], Quarantined) and "compressed" in items[-1].reason
    assert all(isinstance(x, Document) for x in items[:-1]) and len(items) > 1


def test_sharding_independent_of_workers(tmp_path: Path):
    (tmp_path / "big.jsonl").write_text("".join(json.dumps({"text": f"d{i}"}) + "\n" for i in range(25)))
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text(f"file {i}")
    shards = plan_shards(expand_inputs([tmp_path]), 10, 2, 4096)
    assert [(s.kind, s.start, s.stop) for s in shards if s.kind == "records"] == [
        ("records", 0, 10), ("records", 10, 20), ("records", 20, -1)]
    assert sum(len(s.files) for s in shards if s.kind == "files") == 5
    docs = [d for s in shards for d in read_shard(s, "text", G, 4096)]
    assert [d.text for d in docs if d.text.startswith("d")] == [f"d{i}" for i in range(25)]


def test_lines_across_chunk_boundaries(tmp_path: Path):
    """Lines are split per 64 KB chunk in C: lines ending at, spanning, or longer than several chunks
    come out as a plain split would give them; an over-long one is None, the rest unchanged."""
    sizes = [0, 1, 65535, 65536, 65537, 200_000, 3, 131_071, 10]
    lines = [bytes([97 + i % 26]) * n for i, n in enumerate(sizes)]
    p = tmp_path / "c.jsonl"
    for tail in (b"", b"\n"):
        p.write_bytes(b"\n".join(lines) + tail)
        got = list(iter_lines(p, 150_000))
        assert [n for n, _ in got] == list(range(1, len(lines) + 1))
        assert [x for _, x in got] == [x if len(x) <= 150_000 else None for x in lines]


def test_json_lines_round_trip_keeps_what_json_keeps(tmp_path: Path):
    """orjson does the work, json takes over where the two differ: floats, NaN, integers beyond 64
    bits, non-string keys; a bad line is one error naming file and line."""
    from pretrain.data.curate.io.writers import JsonlWriter
    from pretrain.data.record import loads, read_jsonl, read_records

    metas = [{}, {"score": 0.25, "n": 10**30, "x": float("nan")}, {"nested": [{"a": 1}, "é", None, True]}]
    docs = [Document(text=("w " * n) + "ü 東京", id=f"d{n}", meta=metas[n % 3]) for n in (0, 1, 2, 40_000, 5)]
    for name in ("a.jsonl", "a.jsonl.zst"):
        w = JsonlWriter(tmp_path / name)
        for d in docs:
            w.write(d)
        w.close()
        got = list(read_records(tmp_path / name))
        assert [g.text for g in got] == [d.text for d in docs]
        assert got[1].meta["n"] == 10**30 and isinstance(got[1].meta["n"], int)
        assert got[1].meta["score"] == 0.25 and got[1].meta["x"] != got[1].meta["x"]  # NaN survives
        assert json.dumps([g.to_dict() for g in got]) == json.dumps([g.to_dict() for g in read_jsonl(tmp_path / name)])
    assert loads(b'{"a": 123456789012345678901234567890}')["a"] == 123456789012345678901234567890
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "a"}\n{"text": \n')
    try:
        list(read_records(tmp_path / "bad.jsonl"))
    except ValueError as exc:
        assert str(exc).startswith(f"{tmp_path / 'bad.jsonl'}:2: bad record")
    else:
        raise AssertionError("a bad line must raise")
