"""On-disk, hash-partitioned tables shared by the dedup steps (exact, MinHash, line, URL).

Every collected document gets a 64-bit *document key* ``shard << 32 | i`` (i = its rank among the
documents that shard collected), so sorting keys is sorting by input order, whatever the number of
workers. Per shard a step writes:

- ``ids-s<shard>.npz``: the position of each collected document in the shard's stream and its id as
  UTF-8 bytes (offsets + one blob), so any id (non-ASCII, any length) is stored losslessly;
- ``<name>-s<shard>.part``: rows sorted by hash partition, after a small header that holds the row
  type and the P + 1 offsets of each partition's slice. A partition task reads only its slice of each
  file (one open, three reads), so one task holds about rows / P, never the whole table. P tasks each
  read S files, so the cost per file read matters: the header and the offsets share the file with the
  rows (a separate offsets file doubled the opens).

Decisions come back the same way: a removal table of (document key, kept document key) rows sorted by
document key with per-shard offsets, read by the apply pass one shard slice at a time.

Every file is written to a temporary name and renamed, so a killed, retried task never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import ast
import glob
import mmap
import os
import struct
from pathlib import Path

import numpy as np

REMOVAL_DTYPE = np.dtype([("doc", "<u8"), ("keep", "<u8")])
PAIR_DTYPE = np.dtype([("a", "<u8"), ("b", "<u8")])


def save(path: Path, arr: np.ndarray) -> None:
    """np.save atomically."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    tmp.replace(path)


def doc_keys(shard: int, n: int) -> np.ndarray:
    return (np.uint64(shard) << np.uint64(32)) | np.arange(n, dtype=np.uint64)


def shard_of(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(32)).astype(np.int64)


def rank_of(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def partition_of(hashes: np.ndarray, parts: int) -> np.ndarray:
    # The high bits: the low bits of some hash families are weaker, and the MinHash band keys' low bits
    # carry the band index.
    return ((hashes >> np.uint64(40)) % np.uint64(parts)).astype(np.int64)


def auto_partitions(n_shards: int, shards_per_partition: int = 4) -> int:
    """Enough partitions that each holds about ``shards_per_partition`` shards' rows (bounded memory)."""
    return max(1, min(4096, -(-n_shards // shards_per_partition)))


# -- ids -----------------------------------------------------------------------------------------------


def save_ids(work: Path, shard: int, positions: list[int], ids: list[str]) -> None:
    raw = [i.encode("utf-8", "surrogatepass") for i in ids]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in raw], out=off[1:])
    path = work / f"ids-s{shard:05d}.npz"
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        np.savez(f, pos=np.asarray(positions, dtype=np.int64), off=off,
                 blob=np.frombuffer(b"".join(raw), dtype=np.uint8))
    tmp.replace(path)


class IdTable:
    """Positions and ids of one shard's collected documents."""

    def __init__(self, work: Path, shard: int):
        with np.load(work / f"ids-s{shard:05d}.npz") as z:
            self.pos, self.off, self.blob = z["pos"], z["off"], z["blob"].tobytes()

    def id(self, i: int) -> str:
        return self.blob[self.off[i]: self.off[i + 1]].decode("utf-8", "surrogatepass")


# -- partitioned tables --------------------------------------------------------------------------------


_PART_MAGIC = b"PTPART1\0"
_DTYPES: dict[bytes, np.dtype] = {}


def write_partitioned(work: Path, name: str, shard: int, rows: np.ndarray, part: np.ndarray, parts: int) -> None:
    """Rows sorted by partition (stable: input order kept within one), in one file with the offsets.

    Layout: magic (8 bytes), u64 P, u64 n, the row type as n bytes (NumPy's descr, as a Python literal),
    zero padding to 8 bytes, P + 1 little-endian int64 offsets (in rows), then the rows."""
    order = np.argsort(part, kind="stable")
    counts = np.bincount(part, minlength=parts) if len(part) else np.zeros(parts, dtype=np.int64)
    off = np.zeros(parts + 1, dtype="<i8")
    np.cumsum(counts, out=off[1:])
    descr = repr(np.lib.format.dtype_to_descr(rows.dtype)).encode()
    head = _PART_MAGIC + struct.pack("<QQ", parts, len(descr)) + descr
    head += b"\0" * (-len(head) % 8)
    path = work / f"{name}-s{shard:05d}.part"
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        f.write(head)
        f.write(off.tobytes())
        f.write(np.ascontiguousarray(rows[order]).tobytes())
    tmp.replace(path)


def _pread_exact(fd: int, n: int, offset: int, path: Path) -> bytes:
    out = bytearray()
    while len(out) < n:
        got = os.pread(fd, n - len(out), offset + len(out))
        if not got:
            raise ValueError(f"{path}: truncated partitioned table")
        out += got
    return bytes(out)


def read_part(path: Path, p: int, dtype: np.dtype | None = None) -> np.ndarray | None:
    """Partition ``p`` of one file written by :func:`write_partitioned` (None if there is no file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        head = os.pread(fd, 256, 0)
        if head[:8] != _PART_MAGIC:
            raise ValueError(f"{path}: not a partitioned table")
        parts, n = struct.unpack_from("<QQ", head, 8)
        if len(head) < 24 + n:
            head = _pread_exact(fd, 24 + n, 0, path)
        descr = head[24: 24 + n]
        if dtype is None:
            if descr not in _DTYPES:  # parsed once per row type and process
                _DTYPES[descr] = np.lib.format.descr_to_dtype(ast.literal_eval(descr.decode()))
            dtype = _DTYPES[descr]
        dtype = np.dtype(dtype)
        base = 24 + n + (-(24 + n) % 8)
        lo, hi = struct.unpack("<qq", _pread_exact(fd, 16, base + 8 * p, path))
        if hi <= lo:
            return np.zeros(0, dtype=dtype)
        data = base + 8 * (parts + 1)
        return np.frombuffer(_pread_exact(fd, (hi - lo) * dtype.itemsize, data + lo * dtype.itemsize, path),
                             dtype=dtype)
    finally:
        os.close(fd)


def _data_offset(f) -> int:
    """Where the data of an open .npy file starts, from its header's length field alone (np.load
    parses the header, a Python literal, with ast: ~0.3 ms a file)."""
    head = f.read(12)
    if head[:6] != b"\x93NUMPY":
        raise ValueError(f"{f.name}: not an .npy file")
    return 10 + int.from_bytes(head[8:10], "little") if head[6] == 1 else 12 + int.from_bytes(head[8:12], "little")


def gather_rows(path: Path, dtype: np.dtype, width: int, rows: np.ndarray) -> np.ndarray:
    """``arr[rows]`` of a [n, width] .npy file, through a memory map closed before returning (mapped
    pages would otherwise count towards the task's memory)."""
    with open(path, "rb") as f:
        off = _data_offset(f)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            arr = np.frombuffer(mm, dtype=dtype, offset=off).reshape(-1, width)
            out = arr[rows]
            del arr
    return out


def read_partition(work: Path, name: str, p: int, n_sources: int, dtype: np.dtype | None = None) -> np.ndarray:
    """Partition ``p`` of table ``name`` over the files of all its sources (shards, or the tasks of a
    stage): only that slice of each file is read; a source that wrote no file is skipped. ``dtype``:
    the table's row type, if the caller knows it (else read from the files)."""
    pieces = [x for s in range(n_sources) if (x := read_part(work / f"{name}-s{s:05d}.part", p, dtype)) is not None]
    if not pieces:
        return np.zeros(0, dtype=dtype or np.uint64)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """``np.unique`` of (a, b) rows (sorted by a, then b), by lexsort on the two uint64 fields: NumPy
    sorts a structured array with a generic comparison, ~10x slower."""
    if len(pairs) < 2:
        return pairs.copy()
    p = pairs[np.lexsort((pairs["b"], pairs["a"]))]
    new = np.ones(len(p), dtype=bool)
    new[1:] = (p["a"][1:] != p["a"][:-1]) | (p["b"][1:] != p["b"][:-1])
    return p[new]


# -- removal tables ------------------------------------------------------------------------------------


def write_removals(work: Path, name: str, rows: np.ndarray, n_shards: int) -> None:
    """(doc, keep) rows -> one file sorted by doc with per-shard offsets."""
    rows = np.sort(rows, order=["doc"]) if len(rows) else np.zeros(0, dtype=REMOVAL_DTYPE)
    off = np.searchsorted(shard_of(rows["doc"]), np.arange(n_shards + 1), side="left").astype(np.int64)
    save(work / f"{name}.npy", rows)
    save(work / f"{name}.off.npy", off)


class Removals:
    """Per-shard view of every removal table of a step: position in the stream -> id of the kept document."""

    def __init__(self, work: Path, pattern: str = "rm*.npy"):
        self.work = work
        self.files = sorted(f for f in glob.glob(str(work / pattern)) if not f.endswith(".off.npy"))
        self.tables: dict[int, IdTable] = {}

    def for_shard(self, shard: int) -> dict[int, str]:
        ids = IdTable(self.work, shard) if (self.work / f"ids-s{shard:05d}.npz").exists() else None
        out: dict[int, str] = {}
        for f in self.files:
            off = np.load(f[:-4] + ".off.npy")
            if shard + 1 >= len(off) or off[shard + 1] <= off[shard]:
                continue
            m = np.load(f, mmap_mode="r")
            rows = np.array(m[off[shard]: off[shard + 1]])
            del m
            for doc, keep in zip(rank_of(rows["doc"]), rows["keep"], strict=True):
                ks, kr = int(keep >> np.uint64(32)), int(keep & np.uint64(0xFFFFFFFF))
                if ks not in self.tables:
                    if len(self.tables) >= 64:  # bound the cache of other shards' id tables
                        self.tables.clear()
                    self.tables[ks] = IdTable(self.work, ks)
                assert ids is not None, f"{self.work}: removals for shard {shard} without its id table"
                out[int(ids.pos[doc])] = self.tables[ks].id(kr)
        return out


def first_of_groups(keys: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """For rows sorted by (key, doc): removal rows (doc, first doc of its key group) for non-first rows."""
    if not len(keys):
        return np.zeros(0, dtype=REMOVAL_DTYPE)
    new = np.concatenate([[True], keys[1:] != keys[:-1]])
    head = np.maximum.accumulate(np.where(new, np.arange(len(keys)), 0))
    dup = ~new
    out = np.zeros(int(dup.sum()), dtype=REMOVAL_DTYPE)
    out["doc"], out["keep"] = docs[dup], docs[head[dup]]
    return out
