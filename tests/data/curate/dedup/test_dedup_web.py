"""URL dedup (newest capture kept), lossless non-ASCII ids through dedup, hash-partition invariance of
exact and line dedup, the input fingerprint, and shards that seek to their first record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.dedup.urls import UNDATED, capture_time, normalize_url
from pretrain.data.curate.io.readers import expand_inputs, plan_shards, read_shard
from pretrain.data.record import read_dir


def write(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    return path


def conserved(stats: dict) -> dict:
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    return stats


def test_normalize_url_and_dates():
    a = normalize_url("https://WWW.Example.com:443/a/b?utm_source=x&z=1&a=2#frag")
    assert a == normalize_url("http://example.com/a/b?a=2&z=1") == "example.com/a/b?a=2&z=1"
    assert normalize_url("http://example.com") == "example.com/"
    assert normalize_url("http://example.com:8080/x") != normalize_url("http://example.com/x")
    assert capture_time("2024-03-01T00:00:00Z") == capture_time("2024-03-01T01:00:00+01:00") > capture_time("2023-12-31")
    assert capture_time("not a date") == capture_time(None) == UNDATED
    with pytest.raises(ValueError, match="without a host"):
        normalize_url("/relative/path")


def test_url_dedup_keeps_the_newest_capture(tmp_path: Path):
    body = "A page about the river valley, captured {} times, with enough words to pass the length rule."
    recs = [
        {"id": "old", "text": body.format("first"), "domain": "docs",
         "meta": {"url": "http://www.example.com/page?utm_campaign=x", "date": "2021-05-01T10:00:00Z"}},
        {"id": "newest", "text": body.format("third"), "domain": "docs",
         "meta": {"url": "https://example.com/page#top", "date": "2024-02-01T10:00:00Z"}},
        {"id": "middle", "text": body.format("second"), "domain": "docs",
         "meta": {"url": "https://example.com/page", "date": "2023-01-01T10:00:00+02:00"}},
        {"id": "undated", "text": body.format("fourth"), "domain": "docs", "meta": {"url": "https://example.com/page"}},
        {"id": "other", "text": body.format("other"), "domain": "docs",
         "meta": {"url": "https://example.com/other", "date": "2020-01-01"}},
        {"id": "no-url", "text": body.format("no url"), "domain": "docs"},
    ]
    src = write(tmp_path / "web.jsonl", recs)
    for parts in (1, 3, 17):  # 17: the removals in 3 shard groups (one table per group)
        out = tmp_path / f"o{parts}"
        cfg = CurateConfig(shard_docs=2, steps=[{"type": "url_dedup", "partitions": parts}])
        stats = conserved(curate([src], out, cfg, workers=1, progress=False))
        assert {d.id for d in read_dir(out / "data")} == {"newest", "other", "no-url"}
        removed = {d.id: d.meta for d in read_dir(out / "removed")}
        assert set(removed) == {"old", "middle", "undated"}
        assert all(m["duplicate_of"] == "newest" and m["reason"] == "duplicate_url" for m in removed.values())
        row = stats["steps"][0]
        assert row["skipped"] == 1 and row["counters"]["undated"] == 1 and row["index"]["distinct_urls"] == 2
    # the default pipeline has it too (curated 'docs' records only meet the universal steps)
    stats = conserved(curate([src], tmp_path / "default", CurateConfig(), workers=1, progress=False))
    assert {d.id for d in read_dir(tmp_path / "default" / "data")} == {"newest", "other", "no-url"}
    assert [s for s in stats["steps"] if s["name"] == "url_dedup"][0]["removed"] == 3


def test_non_ascii_ids_survive_dedup(tmp_path: Path):
    text = "Ein ziemlich langer Satz über Flüsse, Täler und Dörfer, der zweimal vorkommt."
    ids = ["文書-第一号-とても長い識別子-0001", "документ-№2-очень-длинный", "émoji-🙂-3", "plain-4"]
    recs = [{"id": ids[0], "text": text}, {"id": ids[1], "text": text + " Und noch etwas."},
            {"id": ids[2], "text": text.upper()}, {"id": ids[3], "text": "Something else entirely, quite different."}]
    src = write(tmp_path / "ids.jsonl", recs)
    cfg = CurateConfig(shard_docs=1, steps=[{"type": "exact_dedup", "partitions": 2}, {"type": "minhash_dedup",
                                                                                        "threshold": 0.5}])
    conserved(curate([src], tmp_path / "o", cfg, workers=1, progress=False))
    assert {d.id for d in read_dir(tmp_path / "o" / "data")} == {ids[0], ids[3]}
    removed = {d.id: d.meta for d in read_dir(tmp_path / "o" / "removed")}
    assert removed[ids[2]]["removed_by"] == "exact_dedup" and removed[ids[2]]["duplicate_of"] == ids[0]
    assert removed[ids[1]]["removed_by"] == "minhash_dedup" and removed[ids[1]]["duplicate_of"] == ids[0]


def test_line_and_exact_dedup_same_for_any_partitions(tmp_path: Path, prose):
    banner = "Accept all cookies to continue browsing this site"
    recs = [{"id": f"d{i}", "domain": "web", "text": f"{prose(i)}\n{banner}\n{prose(i + 100)}"} for i in range(12)]
    recs += [{"id": f"x{i}", "domain": "web", "text": recs[i]["text"]} for i in range(3)]
    src = write(tmp_path / "lines.jsonl", recs)
    snaps = []
    for parts in (1, 2, 4, 17):  # 17: exact dedup's removals in 3 shard groups (one table per group)
        out = tmp_path / f"o{parts}"
        cfg = CurateConfig(shard_docs=4, keep_work=True, steps=[{"type": "exact_dedup", "partitions": parts},
                                                {"type": "line_dedup", "partitions": parts}])
        stats = conserved(curate([src], out, cfg, workers=1, progress=False))
        assert stats["removed"] == 3
        docs = sorted((d.id, d.text, d.meta.get("duplicate_of")) for d in read_dir(out / "data"))
        assert all(banner not in t for _, t, _ in docs) and len(docs) == 12
        snaps.append((docs, sorted((d.id, d.meta["duplicate_of"]) for d in read_dir(out / "removed"))))
        tables = list(out.glob("work/*exact_dedup*/rm-g*.off.npy"))
        assert len(tables) == -(-parts // 8), tables
    assert snaps[0] == snaps[1] == snaps[2] == snaps[3]


def test_fingerprint_sees_an_edit_of_the_same_size(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    write(src, [{"id": "a", "text": "The first version of this document text."}])
    size, mtime = src.stat().st_size, src.stat().st_mtime_ns
    cfg = CurateConfig(steps=[{"type": "normalize"}])
    curate([src], tmp_path / "o", cfg, workers=1, progress=False)
    write(src, [{"id": "a", "text": "The other version of this document text."}])
    os.utime(src, ns=(mtime, mtime))  # same size and same mtime: only the content differs
    assert src.stat().st_size == size
    stats = conserved(curate([src], tmp_path / "o", cfg, workers=1, progress=False))
    assert [d.text for d in read_dir(tmp_path / "o" / "data")] == ["The other version of this document text."]
    assert stats["kept"] == 1


def test_shards_seek_to_their_first_record(tmp_path: Path):
    lines = [json.dumps({"text": f"record number {i} " + "é" * (i % 5)}, ensure_ascii=False) for i in range(25)]
    (tmp_path / "big.jsonl").write_text("\n".join(lines[:12]) + "\n\n" + "\n".join(lines[12:]) + "\n",
                                        encoding="utf-8")  # an empty line 13 is quarantined in place
    shards = plan_shards(expand_inputs([tmp_path]), 10, 2, 4096)
    assert [s.start for s in shards] == [0, 10, 20] and all(s.start_byte > 0 for s in shards[1:])
    got = [(d.source.rsplit(":", 1)[1], getattr(d, "text", None)) for s in shards
           for d in read_shard(s, "text", {}, 4096)]
    assert [src for src, _ in got] == [str(i) for i in range(1, 27)]
    texts = [t for _, t in got if t and t.startswith("record")]
    assert texts == [json.loads(x)["text"] for x in lines]
