"""Reading a compressed JSONL file cut into N shards: entering each shard at its frame vs from line 1.

Writes one synthetic ``.jsonl.zst`` and one ``.jsonl.gz`` of ``--mb`` MB (records of ~300 bytes) as
independent frames / members of ``--frame-kb`` KB each (what ``pzstd``, ``bgzip`` or concatenated parts
give), plans it into about N shards with ``plan_shards``, and reads every shard in turn in this process:

- ``seek``: the shards as planned (each starts at its zstd frame / gzip member and skips to its record);
- ``from start``: the same shards with their seek points removed, which is how every compressed shard
  was read before (decompress from line 1, drop the records before the shard's first).

Then the same data as one frame / member (plain ``zstd`` / ``gzip`` output): the planning task as the
runner calls it (count the lines, then write the re-chunked copy, ``rechunk.py``) against counting
alone, and reading the N shards from the copy against reading the file once as its only shard.

Reports CPU seconds (``time.process_time``, so other jobs on a loaded machine count less) and the
compressed bytes read, and checks that both ways give the same records. Usage::

    python benchmarks/curate_compressed_shards.py [--mb 32] [--shards 1 8 32] [--frame-kb 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path

import zstandard

from pretrain.data.curate.execution.runner import cuts_task
from pretrain.data.curate.io import storage
from pretrain.data.curate.io.lines import iter_lines
from pretrain.data.curate.io.readers import expand_inputs, plan_shards, read_shard, record_cuts


def write_inputs(root: Path, mb: int, frame_kb: int, suffix: str = "") -> list[Path]:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    lines, size, i = [], 0, 0
    while size < mb << 20:
        line = json.dumps({"id": f"d{i}", "text": " ".join(rng.choices(words, k=45))}) + "\n"
        lines.append(line)
        size += len(line)
        i += 1
    raw = "".join(lines).encode()
    step = frame_kb << 10 if frame_kb else len(raw)
    pieces = [raw[j:j + step] for j in range(0, len(raw), step)]
    zst, gz = root / f"in{suffix}.jsonl.zst", root / f"in{suffix}.jsonl.gz"
    cctx = zstandard.ZstdCompressor(level=3)
    zst.write_bytes(b"".join(cctx.compress(p) for p in pieces))
    gz.write_bytes(b"".join(gzip.compress(p, compresslevel=6, mtime=0) for p in pieces))
    return [zst, gz]


def read_all(shards, counter: list[int]) -> tuple[float, int, int, int]:
    counter[0] = 0
    t0 = time.process_time()
    n = 0
    check = 0
    for s in shards:
        for d in read_shard(s, "text", {}, 1 << 20):
            n += 1
            check = (check * 31 + hash(d.id)) & 0xFFFFFFFF  # the same records in the same order
    return time.process_time() - t0, n, check, counter[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--frame-kb", type=int, default=256)
    args = ap.parse_args()

    counter = [0]
    real_open = storage.open_binary

    class Counted:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            data = self.f.read(n)
            counter[0] += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    storage.open_binary = lambda p: Counted(real_open(p))  # count the compressed bytes each way reads
    print(f"load average {os.getloadavg()[0]:.2f}; {args.mb} MB of JSONL per file, {args.frame_kb} KB frames")
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_inputs(Path(tmp), args.mb, args.frame_kb):
            size = path.stat().st_size
            n_lines = sum(1 for _ in iter_lines(path, 1 << 20))
            for n_shards in args.shards:
                per = -(-n_lines // n_shards)
                shards = plan_shards(expand_inputs([path]), per, 10, 1 << 20, bytes_per_shard=1 << 62)
                old = [dataclasses.replace(s, start_byte=-1, skip_bytes=0) for s in shards]
                (t_new, n_new, c_new, b_new), (t_old, n_old, c_old, b_old) = read_all(shards, counter), read_all(old, counter)
                assert n_new == n_old == n_lines and c_new == c_old, (n_new, n_old, n_lines)
                print(f"{path.name:14s} {size / 2**20:6.1f} MB compressed, {len(shards):3d} shards: "
                      f"seek {t_new:6.2f} s CPU, {b_new / size:5.2f}x the file read | "
                      f"from start {t_old:6.2f} s CPU, {b_old / size:5.2f}x read | {t_old / t_new:5.2f}x faster")
        for path in write_inputs(Path(tmp), args.mb, 0, "-one-frame"):
            n_lines = sum(1 for _ in iter_lines(path, 1 << 20))
            files = expand_inputs([path])
            (t_one, n_one, c_one, _) = read_all(plan_shards(files, 1 << 40, 10, 1 << 20), counter)
            for n_shards in [n for n in args.shards if n > 1]:
                per = -(-n_lines // n_shards)
                out = Path(tmp) / f"out-{path.name}-{n_shards}"
                t0 = time.process_time()
                cuts = record_cuts(path, 1 << 20, per, 1 << 62)
                t_count = time.process_time() - t0
                t0 = time.process_time()
                cuts = cuts_task(str(path), 1 << 20, per, 1 << 62, str(out))
                t_plan = time.process_time() - t0
                shards = plan_shards(files, per, 10, 1 << 20, cuts={str(path): cuts})
                t_read, n_read, c_read, _ = read_all(shards, counter)
                assert n_read == n_one == n_lines and c_read == c_one
                copy = Path(cuts.read_from).stat().st_size
                print(f"{path.name:24s} one frame, {len(shards):3d} shards: planning {t_plan:5.2f} s CPU "
                      f"(counting alone {t_count:5.2f} s; copy {copy / 2**20:5.1f} MB), reading the shards "
                      f"{t_read:5.2f} s CPU | as one shard {t_one:5.2f} s")


if __name__ == "__main__":
    main()
