"""Hostile inputs and outputs of `pretrain curate` (issue 32), each reproduced as a new user met it:
unreadable and special files in a folder and named directly, a file that vanishes mid-run, an output on a
read-only file system or without permission, and quarantine that must keep the bytes it quarantines.

Every run is bounded (subprocess timeouts where a regression could block), none may print a traceback,
and every curation conserves documents: documents_in = kept + removed + quarantined.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.io.payload import payload_bytes
from pretrain.data.record import open_text

RUN_ONE = ("import sys; from pretrain.cli import main\n"
           "for p in sys.argv[1:-1]:\n"
           "    sys.argv = ['pretrain', 'curate', p, '--out', sys.argv[-1], '-q', '-w', '1']\n"
           "    try:\n"
           "        main()\n"
           "    except SystemExit as exc:\n"
           "        print(exc.code)\n")


def quarantined(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "quarantine").glob("*.jsonl.zst")):
        with open_text(f) as fh:
            rows.extend(json.loads(line) for line in fh)
    return rows


def conserved(stats: dict) -> dict:
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"], stats
    return stats


def reasons(out: Path) -> dict[str, str]:
    return {Path(r["source"].rsplit(":", 1)[0]).name: r["meta"]["reason"] for r in quarantined(out)}


def test_unreadable_file_in_a_folder_is_quarantined_and_the_rest_curated(tmp_path, prose, cli_subprocess):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text(prose(1))
    (raw / "b.jsonl").write_text("".join(json.dumps({"text": prose(i)}) + "\n" for i in (2, 3)))
    (raw / "sub").mkdir()
    (raw / "sub" / "inside.txt").write_text(prose(8))
    for name in ("locked.txt", "locked.jsonl", "sub"):
        if name != "sub":
            (raw / name).write_text(json.dumps({"text": prose(9)}) + "\n")
        (raw / name).chmod(0)
    got = cli_subprocess("curate", raw, "--out", tmp_path / "out", "-q", "-w", "1", drop_dac=True, timeout=180)
    assert got.returncode == 0 and "Traceback" not in got.stderr, got.stderr[-2000:]
    stats = conserved(json.loads((tmp_path / "out" / "stats.json").read_text()))
    assert stats["documents_in"] == 6 and stats["quarantined"] == 3  # the readable three are curated
    assert reasons(tmp_path / "out") == {"locked.jsonl": "unreadable: permission denied",
                                         "locked.txt": "unreadable: permission denied",
                                         "sub": "unreadable directory: permission denied"}


def test_unreadable_file_named_directly_is_one_line(tmp_path, cli_subprocess):
    locked = tmp_path / "locked.txt"
    locked.write_text("secret words\n")
    locked.chmod(0)
    (tmp_path / "closed").mkdir(mode=0)
    inside = tmp_path / "closed" / "a.txt"  # behind a folder that may not be searched
    got = cli_subprocess(locked, inside, tmp_path / "out", code=RUN_ONE, drop_dac=True)
    assert got.stdout.split() == ["2", "2"]
    assert got.stderr.splitlines() == [f"error: input {locked}: unreadable: permission denied",
                                       f"error: input {inside}: unreadable: permission denied"]


def _special_files(raw: Path) -> None:
    os.mkfifo(raw / "pipe.jsonl")
    with socket.socket(socket.AF_UNIX) as s:  # the socket file stays after the socket closes
        s.bind(str(raw / "sock.txt"))
    os.symlink("/dev/zero", raw / "zero.jsonl")
    os.symlink("/dev/zero", raw / "zero.txt")


def test_special_files_in_a_folder_are_quarantined_not_waited_on(tmp_path, prose, cli_subprocess):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.txt").write_text(prose(4))
    _special_files(raw)
    got = cli_subprocess("curate", raw, "--out", tmp_path / "out", "-q", "-w", "1", timeout=120)
    assert got.returncode == 0 and "Traceback" not in got.stderr, got.stderr[-2000:]
    stats = conserved(json.loads((tmp_path / "out" / "stats.json").read_text()))
    assert stats["documents_in"] == 5 and stats["quarantined"] == 4  # counted, each with its reason
    assert reasons(tmp_path / "out") == {
        "pipe.jsonl": "a FIFO, not a regular file", "sock.txt": "a socket, not a regular file",
        "zero.jsonl": "symlink to a character device, not a regular file",
        "zero.txt": "symlink to a character device, not a regular file"}


def test_special_files_named_directly_are_refused_in_one_line(tmp_path, cli_subprocess):
    raw = tmp_path / "raw"
    raw.mkdir()
    _special_files(raw)
    names = [raw / n for n in ("pipe.jsonl", "sock.txt", "zero.jsonl")]
    got = cli_subprocess(*names, tmp_path / "out", code=RUN_ONE, timeout=120)
    assert got.stdout.split() == ["2", "2", "2"]
    assert got.stderr.splitlines() == [
        f"error: input {names[0]}: a FIFO, not a regular file",
        f"error: input {names[1]}: a socket, not a regular file",
        f"error: input {names[2]}: symlink to a character device, not a regular file"]


def test_files_that_vanish_mid_run_are_quarantined(tmp_path, prose, plugin_steps):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text("".join(json.dumps({"text": prose(i) + (" VANISH" if i == 1 else "")}) + "\n"
                                         for i in range(3)))
    (raw / "b.txt").write_text(prose(7))
    (raw / "c.jsonl").write_text(json.dumps({"text": prose(8)}) + "\n")
    cfg = CurateConfig(step_modules=[plugin_steps], steps=[
        {"type": "test_remove_files", "paths": [str(raw / "b.txt"), str(raw / "c.jsonl")]}])
    stats = conserved(curate([raw], tmp_path / "out", cfg, workers=1, progress=False))
    assert not (raw / "b.txt").exists()  # deleted while a.jsonl was being curated, before its shard ran
    assert stats["documents_in"] == 5 and stats["kept"] == 3 and stats["quarantined"] == 2
    assert reasons(tmp_path / "out") == {"b.txt": "vanished (no such file)", "c.jsonl": "vanished (no such file)"}


def test_readonly_out_is_one_line(readonly_dir, tmp_path, prose, cli):
    (tmp_path / "a.txt").write_text(prose(1))
    rc, _, err = cli("curate", tmp_path / "a.txt", "--out", readonly_dir / "out", "-q")
    assert rc == 2 and err == f"error: output {readonly_dir / 'out'} is not writable: read-only file system\n"


def test_out_under_a_file_or_without_permission_is_one_line(tmp_path, prose, cli, cli_subprocess):
    (tmp_path / "a.txt").write_text(prose(1))
    rc, _, err = cli("curate", tmp_path / "a.txt", "--out", tmp_path / "a.txt" / "out", "-q")
    assert rc == 2 and err == (f"error: output {tmp_path / 'a.txt' / 'out'} is not writable: "
                               f"{tmp_path / 'a.txt'} is not a directory\n")
    (tmp_path / "locked").mkdir(mode=0o555)
    got = cli_subprocess("curate", tmp_path / "a.txt", "--out", tmp_path / "locked" / "out", "-q", drop_dac=True)
    assert got.returncode == 2
    assert got.stderr == f"error: output {tmp_path / 'locked' / 'out'} is not writable: permission denied\n"
    (tmp_path / "closed").mkdir(mode=0)  # not even searchable: the folders under it cannot be looked at
    deep = tmp_path / "closed" / "a" / "out"
    got = cli_subprocess("curate", tmp_path / "a.txt", "--out", deep, "-q", drop_dac=True)
    assert got.returncode == 2 and got.stderr == f"error: output {deep} is not writable: permission denied\n"


def test_negative_workers_is_refused(tmp_path, prose, cli):
    (tmp_path / "a.txt").write_text(prose(1))
    rc, _, err = cli("curate", tmp_path / "a.txt", "--out", tmp_path / "out", "-w", "-3")
    assert rc == 2 and err == "error: --workers must be >= 0 (got -3)\n"
    with pytest.raises(ValueError, match="workers must be >= 0"):
        curate([tmp_path / "a.txt"], tmp_path / "out", workers=-3, progress=False)
    assert not (tmp_path / "out").exists()


def test_truncated_gzip_keeps_the_cut_line(tmp_path):
    lines = [json.dumps({"text": f"Line number {i} of a stream that is cut off while being copied."}).encode()
             for i in range(3000)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    cut = data[: len(data) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    assert not readable.endswith(b"\n")  # the cut falls inside a line
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "cut.jsonl.gz").write_bytes(cut)
    stats = conserved(curate([tmp_path / "raw"], tmp_path / "out", CurateConfig(steps=[]), workers=1,
                             progress=False))
    (q,) = quarantined(tmp_path / "out")
    whole = readable.count(b"\n")
    assert "truncated" in q["meta"]["reason"] and stats["kept"] == whole
    assert payload_bytes(q["meta"]["payload"]) == readable.rsplit(b"\n", 1)[1]  # the cut line, as far as it goes
    assert q["source"].endswith(f":{whole + 1}")


@pytest.mark.parametrize("compress", ["", "zst"])
def test_20mb_record_is_kept_by_reference(tmp_path, compress):
    big = json.dumps({"text": "word " * 4_000_000}).encode()  # 20 MB, over max_record_bytes (8 MB)
    small = [json.dumps({"text": f"A small record number {i} with a few words."}).encode() for i in range(2)]
    data = small[0] + b"\n" + big + b"\n" + small[1] + b"\n"
    (tmp_path / "raw").mkdir()
    path = tmp_path / "raw" / f"big.jsonl{'.zst' if compress else ''}"
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if compress else data)
    cfg = CurateConfig(steps=[], shard_bytes=1 << 40)
    stats = conserved(curate([tmp_path / "raw"], tmp_path / "out", cfg, workers=1, progress=False))
    assert stats["documents_in"] == 3 and stats["quarantined"] == 1
    (q,) = quarantined(tmp_path / "out")
    p = q["meta"]["payload"]
    assert p["file"] == str(path) and p["length"] == len(big) and q["source"] == f"{path}:2"
    assert payload_bytes(p) == big  # read back from the file: offset and length are exact
    assert p["prefix_base64"] and payload_bytes({"base64": p["prefix_base64"]}) == big[:4096]


def test_20mb_text_file_is_kept_by_reference(tmp_path):
    (tmp_path / "raw").mkdir()
    path = tmp_path / "raw" / "book.txt"
    path.write_bytes(b"All work and no play. " * 1_000_000)  # 22 MB, over max_record_bytes (8 MB)
    stats = conserved(curate([tmp_path / "raw"], tmp_path / "out", CurateConfig(steps=[]), workers=1, progress=False))
    (q,) = quarantined(tmp_path / "out")
    assert stats["quarantined"] == 1 and q["meta"]["reason"].startswith("file too large (22000000 bytes")
    assert payload_bytes(q["meta"]["payload"]) == path.read_bytes()


def test_bad_records_keep_their_exact_bytes_and_unique_ids(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    bad_lines = [b'{"text": ""}', b'{"text": ""}', b"{not json", b'{"text": "caf\xe9"}', b"   ", b"[1, 2]"]
    (raw / "r.jsonl").write_bytes(b"\n".join([b'{"text": "One fine record of plain words."}', *bad_lines]) + b"\n")
    (raw / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    (raw / "blob.bin").write_bytes(bytes(range(256)) * 4)
    stats = conserved(curate([raw], tmp_path / "out", CurateConfig(steps=[]), workers=1, progress=False))
    rows = quarantined(tmp_path / "out")
    assert stats["quarantined"] == len(rows) == len(bad_lines) + 2
    by_source = {r["source"]: payload_bytes(r["meta"]["payload"]) for r in rows}
    for i, line in enumerate(bad_lines, start=2):
        assert by_source[f"{raw / 'r.jsonl'}:{i}"] == line
    assert by_source[str(raw / "latin1.txt")] == (raw / "latin1.txt").read_bytes()
    assert by_source[str(raw / "blob.bin")] == (raw / "blob.bin").read_bytes()
    assert len({r["id"] for r in rows}) == len(rows)  # two identical empty records, two ids


def test_non_string_parquet_values_keep_the_row_and_unique_ids(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(pa.table({"text": [1, 2, 2], "n": [7, 8, 9]}), raw / "ints.parquet")
    pq.write_table(pa.table({"text": pa.array([b"\xff\x00", b"\xff\x00"], pa.binary())}), raw / "bin.parquet")
    stats = conserved(curate([raw], tmp_path / "out", CurateConfig(steps=[]), workers=1, progress=False))
    rows = quarantined(tmp_path / "out")
    assert stats["quarantined"] == len(rows) == 5
    assert len({r["id"] for r in rows}) == 5 and "da39a3ee5e6b4b0d" not in {r["id"] for r in rows}
    got = {r["source"]: json.loads(payload_bytes(r["meta"]["payload"])) for r in rows}
    assert got[f"{raw / 'ints.parquet'}@1"] == {"text": 2, "n": 8}
    assert got[f"{raw / 'bin.parquet'}@0"] == {"text": {"base64": "/wA="}}


def test_parquet_without_text_column_keeps_a_reference_to_the_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(pa.table({"body": ["a", "b"]}), raw / "nocol.parquet")
    (raw / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    stats = conserved(curate([raw], tmp_path / "out", CurateConfig(steps=[]), workers=1, progress=False))
    assert stats["quarantined"] == 2
    for r in quarantined(tmp_path / "out"):
        assert payload_bytes(r["meta"]["payload"]) == Path(r["source"]).read_bytes()  # the whole file


def test_duplicate_ids_and_empty_compressed_files_are_warned_once(tmp_path, prose, cli):
    raw = tmp_path / "raw"
    raw.mkdir()
    recs = [{"id": "same" if i % 2 else f"x{i}", "text": prose(i)} for i in range(6)]
    (raw / "dups.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (raw / "empty.jsonl.zst").write_bytes(b"")
    rc, _, err = cli("curate", raw, "--out", tmp_path / "out", "-q", "-w", "1")
    assert rc == 0
    assert err.splitlines() == [
        f"warning: 1 empty compressed file(s) (0 bytes, read as no records): {raw / 'empty.jsonl.zst'}",
        f"warning: 2 input record(s) repeat the id of an earlier record, all kept "
        f"(e.g. same in {raw / 'dups.jsonl'}:4)"]
    stats = conserved(json.loads((tmp_path / "out" / "stats.json").read_text()))
    assert stats["duplicate_ids"] == 2 and len(stats["warnings"]) == 2


def _ids_file(path: Path, ids: list[str], prose, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": prose(seed + n)}) + "\n" for n, i in enumerate(ids)))
    return path


@pytest.mark.parametrize("range_ids", [1 << 24, 2])
def test_duplicate_ids_are_counted_across_shards(tmp_path, prose, monkeypatch, range_ids):
    """Shards of 2 records: [a b] [c a] [b a] hold no repeat each, yet a repeats twice and b once. With
    ``range_ids`` 2 the count runs over several slices of the hash space, as on a large corpus."""
    from pretrain.data.curate.execution import idcheck

    monkeypatch.setattr(idcheck, "RANGE_IDS", range_ids)
    (tmp_path / "raw").mkdir()
    _ids_file(tmp_path / "raw" / "ids.jsonl", ["a", "b", "c", "a", "b", "a"], prose)
    _ids_file(tmp_path / "raw" / "more.jsonl", ["c", "d"], prose, seed=10)  # c again, from another file
    cfg = CurateConfig(steps=[], shard_docs=2)
    stats = conserved(curate([tmp_path / "raw"], tmp_path / "out", cfg, workers=1, progress=False))
    assert stats["shards"] == 4 and stats["kept"] == 8
    assert stats["duplicate_ids"] == 4 and stats["warnings"] == [
        "4 input record(s) repeat the id of an earlier record, all kept"]


def test_unwritable_bucket_is_one_line_and_a_writable_one_keeps_no_probe(tmp_path, prose, s3, cli):
    (tmp_path / "a.txt").write_text(prose(1))
    rc, _, err = cli("curate", tmp_path / "a.txt", "--out", "s3://no-such-bucket/run", "-q")
    assert rc == 2 and err.startswith("error: output s3://no-such-bucket/run is not writable: ")
    assert err.count("\n") == 1
    _ids_file(tmp_path / "ids.jsonl", ["a", "b", "a"], prose, seed=10)
    cfg = CurateConfig(steps=[], shard_docs=1)  # each record its own shard: the repeat is counted from the bucket
    stats = conserved(curate([tmp_path / "a.txt", tmp_path / "ids.jsonl"], "s3://out-bucket/run", cfg, workers=1,
                             progress=False))
    assert stats["documents_in"] == 4 and stats["duplicate_ids"] == 1
    assert not [k for k in s3.find("out-bucket") if ".pretrain-write-probe" in k]


def test_reads_stop_at_the_size_a_file_had_when_opened(tmp_path):
    """A file that grows while it is read (a log being appended to) cannot keep a reader going: lines
    are read up to the size at open, so the planner and a shard agree on what the file holds."""
    from pretrain.data.curate.io.lines import iter_lines

    path = tmp_path / "growing.jsonl"
    line = json.dumps({"text": "x" * 90}).encode() + b"\n"
    path.write_bytes(line * 5000)  # ~500 KB: several read chunks
    lines = iter_lines(path, 1 << 20)
    next(lines)
    with open(path, "ab") as f:
        f.write(line * 5000)
    assert 1 + sum(1 for _ in lines) == 5000
