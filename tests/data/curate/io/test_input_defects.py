"""Regression tests for input defects found by trying the tool as a new user: a Parquet file without the
text column, symlink loops and broken links, and a 50 MB single-line file (peak memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.record import open_text


def quarantined(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "quarantine").glob("*.jsonl.zst")):
        with open_text(f) as fh:
            rows.extend(json.loads(line) for line in fh)
    return rows


def test_parquet_without_text_column_is_one_quarantined_record(tmp_path: Path, prose):
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(pa.table({"body": [prose(i, 6) for i in range(25)]}), raw / "wrong.parquet", row_group_size=5)
    (raw / "ok.txt").write_text(prose(99, 8))
    stats = curate([raw], tmp_path / "out", CurateConfig(shard_docs=10), workers=1, progress=False)
    assert stats["shards"] >= 4  # the Parquet file is cut into 3 shards, yet counted once
    assert stats["quarantined"] == 1 and stats["documents_in"] == 2
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    (q,) = quarantined(tmp_path / "out")
    assert "missing text column 'text'" in q["meta"]["reason"] and "25 rows not read" in q["meta"]["reason"]


def test_symlink_loops_and_broken_links_are_counted(tmp_path: Path, prose):
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "sub" / "a.txt").write_text(prose(1, 8))
    os.symlink("loop2.txt", raw / "loop1.txt")
    os.symlink("loop1.txt", raw / "loop2.txt")
    os.symlink("gone.txt", raw / "dangling.jsonl")
    os.symlink("..", raw / "sub" / "up")  # a directory link back to an ancestor: not followed
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text(prose(2, 8))
    os.symlink(other, raw / "linked")  # a directory link elsewhere: followed
    stats = curate([raw], tmp_path / "out", CurateConfig(), workers=1, progress=False)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"] == 6
    assert stats["kept"] == 2
    reasons = sorted((Path(r["source"]).name, r["meta"]["reason"]) for r in quarantined(tmp_path / "out"))
    assert reasons == [("dangling.jsonl", "broken symlink (target 'gone.txt' missing)"),
                       ("loop1.txt", "symlink loop"), ("loop2.txt", "symlink loop"),
                       ("up", "symlink loop (links to a directory it is inside)")]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from Linux's /proc")
def test_50mb_single_line_file_is_quarantined_without_memory_blowup(tmp_path: Path, prose):
    raw = tmp_path / "raw"
    raw.mkdir()
    line = (prose(7, 40) + " ").encode()
    with open(raw / "huge.txt", "wb") as f:
        for _ in range(50_000_000 // len(line) + 1):
            f.write(line)
    (raw / "small.txt").write_text(prose(8, 8))
    # VmHWM, the peak of this process's own memory map: ru_maxrss would also count the parent's pages
    # the child inherited at fork (a pytest process that ran the S3 tests is several hundred MB)
    code = ("import sys,json;from pretrain.data.curate import CurateConfig,curate;"
            "s=curate([sys.argv[1]],sys.argv[2],CurateConfig(),workers=1,progress=False);"
            "hwm=[int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')][0];"
            "print(json.dumps([s['documents_in'],s['kept'],s['quarantined'],hwm/1024]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    res = subprocess.run([sys.executable, "-c", code, str(raw), str(tmp_path / "out")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    n_in, kept, n_q, peak_mb = json.loads(res.stdout.strip().splitlines()[-1])
    assert (n_in, kept, n_q) == (2, 1, 1)
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"  # was 967 MB: the file was read and processed whole
    (q,) = quarantined(tmp_path / "out")
    assert q["meta"]["reason"].startswith("file too large") and "> 8000000" in q["meta"]["reason"]
