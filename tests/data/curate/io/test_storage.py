"""Object storage: curating from s3:// to s3:// against a real S3-compatible server (moto's, on loopback,
started and removed by the `s3` fixture in conftest.py), plus fsspec URLs of other schemes and their errors."""

from __future__ import annotations

import gzip
import json

import pytest

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.io.storage import as_path, is_url


def test_s3_round_trip(s3, prose, tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAIN_STAGING", str(tmp_path / "staging"))
    recs = [{"text": prose(i, 10), "domain": "web", "id": f"doc{i}"} for i in range(6)]
    recs.append({"text": recs[0]["text"], "domain": "web", "id": "copy"})  # an exact duplicate
    lines = "".join(json.dumps(r) + "\n" for r in recs) + "{not json\n"
    s3.pipe("raw-bucket/crawl/part-0.jsonl.gz", gzip.compress(lines.encode()))
    s3.pipe("raw-bucket/crawl/notes/readme.txt", (prose(50, 10) + "\n").encode())
    s3.pipe("raw-bucket/crawl/.hidden", b"skipped")
    cfg = CurateConfig(shard_docs=4)
    stats = curate(["s3://raw-bucket/crawl/"], "s3://out-bucket/cur", cfg, workers=1, progress=False)
    assert stats["documents_in"] == 9 == stats["kept"] + stats["removed"] + stats["quarantined"]
    assert stats["quarantined"] == 1 and stats["removed"] >= 1
    files = sorted(s3.find("out-bucket/cur"))
    assert "out-bucket/cur/stats.json" in files
    kept = []
    for f in files:
        if f.startswith("out-bucket/cur/data/"):
            import zstandard

            kept += [json.loads(x) for x in zstandard.ZstdDecompressor().decompressobj()
                     .decompress(s3.cat_file(f)).decode().splitlines()]
    assert len(kept) == stats["kept"]
    assert {r["meta"]["input"].rsplit(":", 1)[0] for r in kept if r["domain"] == "web"} == \
        {"s3://raw-bucket/crawl/part-0.jsonl.gz"}
    assert any(r["source"] == "s3://raw-bucket/crawl/notes/readme.txt" for r in kept)
    remote = json.loads(s3.cat_file("out-bucket/cur/stats.json"))
    assert remote["kept"] == stats["kept"] and remote["fingerprint"] == stats["fingerprint"]
    assert any(f.startswith("out-bucket/cur/quarantine/") for f in files)
    assert not (tmp_path / "staging").exists() or not any((tmp_path / "staging").iterdir())
    # a rerun is answered from the remote stats.json, nothing is redone or re-uploaded
    before = {f: s3.info(f)["LastModified"] for f in files}
    again = curate(["s3://raw-bucket/crawl/"], "s3://out-bucket/cur", cfg, workers=1, progress=False)
    assert again["fingerprint"] == stats["fingerprint"]
    assert {f: s3.info(f)["LastModified"] for f in sorted(s3.find("out-bucket/cur"))} == before


def test_memory_and_file_urls(tmp_path, prose):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/in/a.txt", (prose(1, 10) + "\n").encode())
    local = tmp_path / "b.txt"
    local.write_text(prose(2, 10))
    out = tmp_path / "out"
    stats = curate(["memory://bucket/in", f"file://{local}"], out, CurateConfig(), workers=1, progress=False)
    assert stats["documents_in"] == 2 == stats["kept"]
    assert is_url("s3://x/y") and not is_url("file:///x") and not is_url("/x")
    with pytest.raises(ValueError, match="no filesystem for 'nosuchfs://'"):
        as_path("nosuchfs://bucket/x")
    with pytest.raises(FileNotFoundError, match="memory://bucket/missing"):
        curate(["memory://bucket/missing"], out, CurateConfig(), workers=1, progress=False)


def test_cli_takes_urls(tmp_path, prose, monkeypatch):
    import fsspec
    from typer.testing import CliRunner

    from pretrain.cli import app

    monkeypatch.setenv("PRETRAIN_STAGING", str(tmp_path / "staging"))
    fs = fsspec.filesystem("memory")
    fs.pipe("/cli-in/a.txt", (prose(3, 10) + "\n").encode())
    res = CliRunner().invoke(app, ["curate", "memory://cli-in/", "--out", "memory://cli-out/run", "--workers", "1",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    stats = json.loads(fs.cat_file("/cli-out/run/stats.json"))
    assert stats["documents_in"] == stats["kept"] == 1 and fs.find("/cli-out/run/data")
