"""Records whose id repeats an earlier record's, counted over the whole input, not only within a shard.

A JSONL or Parquet record's own ``id`` is kept as its document id, so two records with one id become
two documents that lineage cannot tell apart. Such records are all kept (which one is right is the
producer's call) but counted, and the run warns once. Each shard counts the repeats among its own
records and saves the 64-bit hashes of its distinct ids (:func:`save_shard_ids`, 8 bytes a record);
at the end of the run :func:`cross_shard_repeats` counts the ids that more than one shard holds, a hash
range at a time, so memory stays bounded whatever the corpus size. Two different ids share a 64-bit
hash with probability about n^2 / 2^65 (a billion records: under 3%, and then one extra count).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pretrain.data.curate.dedup.store import save

IDS_DIR = "work/ids"
RANGE_IDS = 1 << 24  # hashes held at once while counting (128 MB)


def _name(shard: int) -> str:
    return f"{IDS_DIR}/{shard:05d}.npy"


def _hash(i: str) -> int:
    if len(i) == 16 and i.isalnum():  # this project's own ids are already 64 bits of SHA-1 in hex: no need to hash again
        try:
            return int(i, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """Sorted 64-bit hashes of distinct ids."""
    return np.unique(np.fromiter((_hash(i) for i in ids), dtype=np.uint64))


def save_shard_ids(out: Path, shard: int, ids: Iterable[str]) -> None:
    """Save a shard's distinct ids (as hashes) under ``out`` (the output, or a task's copy of it)."""
    path = out / _name(shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path, id_hashes(ids))


def cross_shard_repeats(out, shards: list[int]) -> int:
    """How many records repeat an id that an earlier shard holds: for each id in k > 1 shards, k - 1.
    ``out``: the run's LocalOut or RemoteOut (a remote run's files are downloaded to a scratch folder)."""
    have = out.names(IDS_DIR)
    rels = [_name(s) for s in shards if _name(s).rsplit("/", 1)[1] in have]
    if len(rels) < 2:
        return 0
    with tempfile.TemporaryDirectory(prefix="pretrain-ids-") as tmp:
        paths = []
        for rel in rels:
            if out.remote:
                out.get(rel, Path(tmp) / rel)
                paths.append(Path(tmp) / rel)
            else:
                paths.append(out.root / rel)
        arrays = [np.load(p, mmap_mode="r") for p in paths]
        return _count(arrays)


def _count(arrays: list[np.ndarray]) -> int:
    """Repeats across sorted, per-array distinct hash arrays, one slice of the hash space at a time."""
    total = sum(len(a) for a in arrays)
    n_ranges = max(1, -(-total // RANGE_IDS))
    bounds = [np.uint64(min(i * (1 << 64) // n_ranges, (1 << 64) - 1)) for i in range(n_ranges)]
    repeats = 0
    for i in range(n_ranges):
        parts = []
        for a in arrays:
            lo = int(np.searchsorted(a, bounds[i], side="left"))
            hi = len(a) if i + 1 == n_ranges else int(np.searchsorted(a, bounds[i + 1], side="left"))
            parts.append(np.asarray(a[lo:hi]))
        merged = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        repeats += len(merged) - len(np.unique(merged))
    return repeats


__all__ = ["IDS_DIR", "cross_shard_repeats", "id_hashes", "save_shard_ids"]
