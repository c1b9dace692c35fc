"""Connected components of a duplicate graph in rounds of parallel tasks, each holding ~1/P of the edges.

The alternating algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014),
over edge files hash-partitioned by node. Nodes are 64-bit document keys (their order is input order).
With m(u) the smallest of u and its neighbours:

- **large-star** (one task per hash partition of the node u, each seeing all of u's edges): every
  neighbour v > u is re-attached to m(u);
- **small-star** (one task per group of shards of the node u, each seeing u's smaller neighbours): u
  and every smaller neighbour except m(u) are re-attached to m(u).

Both keep every component connected and add no edge between components, and alternating them reaches,
in O(log^2 n) rounds (about log n in practice), the fixed point where each component is a star whose
centre is its smallest node (the paper's Theorems 3 and 4). A large-star task checks that fixed point
for its nodes before it rewrites anything: each node is either a centre (all its neighbours larger) or
a leaf (exactly one neighbour, a smaller one). When no task finds a node that is neither, the edges are
exactly (leaf, smallest node of its component): the removal rows of the keep-the-first rule, and a
last stage writes them per group of shards. Nothing holds a table of all documents, and only nodes that
are in some edge appear. Every task reads its slice of each source file of the round before (one seek,
one read) and deduplicates its rows, so the edge set after each round, the number of rounds and the
result do not depend on the number of partitions or on which task emitted a row.

Files under ``work`` (``write_partitioned`` tables; a round's sources are the tasks of the stage before):

- ``ccl<round>-s<src>``: large-star input, each edge in both directions as (node, neighbour) rows,
  partitioned by a hash of the node;
- ``ccs<round>-s<src>``: small-star input (large-star output), (node, smaller neighbour) rows,
  partitioned by the node's shard group;
- ``rm-g<group>.npy`` + ``.off.npy``: the removal rows of the group's shards, sorted by document.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain.data.curate.dedup.store import (
    PAIR_DTYPE,
    REMOVAL_DTYPE,
    partition_of,
    read_partition,
    shard_of,
    unique_pairs,
    write_partitioned,
    write_removals,
)

_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: document keys' high bits are only the shard


def hash_part(nodes: np.ndarray, parts: int) -> np.ndarray:
    """The large-star partition of each node: spread by a hash, so the early shards (where the kept
    documents, the star centres, gather) do not all land in one partition."""
    return partition_of(nodes * _MIX, parts)


def group_of(nodes: np.ndarray, n_shards: int, parts: int) -> np.ndarray:
    """The shard group (0..parts-1, contiguous ranges of shards) of each node."""
    return shard_of(nodes) * parts // max(1, n_shards)


def group_shards(group: int, n_shards: int, parts: int) -> range:
    """The shards s with ``s * parts // n_shards == group``."""
    return range(-(-group * n_shards // parts), -(-(group + 1) * n_shards // parts))


def _rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a), dtype=PAIR_DTYPE)
    out["a"], out["b"] = a, b
    return out


def _both_ways(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _rows(np.concatenate([a, b]), np.concatenate([b, a]))


def write_edges(work: Path, src: int, a: np.ndarray, b: np.ndarray, parts: int) -> None:
    """Round 0's large-star input from source task ``src``: the undirected edges (a[i], b[i])."""
    rows = _both_ways(a, b)
    write_partitioned(work, "ccl000", src, rows, hash_part(rows["a"], parts), parts)


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted keys: the start and the length of each run of equal keys."""
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(new)
    return starts, np.diff(np.append(starts, len(keys)))


def large_star(work: Path, rnd: int, part: int, n_sources: int, parts: int, n_shards: int) -> dict[str, int]:
    """One large-star task; ``unsettled_nodes`` 0 in every task means its input was the fixed point."""
    rows = unique_pairs(read_partition(work, f"ccl{rnd:03d}", part, n_sources, PAIR_DTYPE))
    u, v = rows["a"], rows["b"]
    starts, sizes = _groups(u)
    node, first = u[starts], v[starts]  # rows sorted by (u, v): a node's first row has its smallest neighbour
    unsettled = ~((first > node) | ((sizes == 1) & (first < node)))
    low = np.repeat(np.minimum(node, first), sizes)  # m(u) on each of u's rows
    up = v > u
    out = _rows(v[up], low[up])  # (v, m(u)): v is the larger end, the node small-star groups it under
    write_partitioned(work, f"ccs{rnd:03d}", part, out, group_of(out["a"], n_shards, parts), parts)
    return {"component_rows": len(rows), "unsettled_nodes": int(unsettled.sum())}


def small_star(work: Path, rnd: int, group: int, parts: int) -> dict[str, int]:
    """One small-star task: writes round ``rnd + 1``'s large-star input."""
    rows = unique_pairs(read_partition(work, f"ccs{rnd:03d}", group, parts, PAIR_DTYPE))
    u, w = rows["a"], rows["b"]  # every w < u
    starts, sizes = _groups(u)
    m = w[starts]  # u's smallest neighbour, smaller than u itself
    low = np.repeat(m, sizes)
    moved = w != low
    out = _both_ways(np.concatenate([w[moved], u[starts]]), np.concatenate([low[moved], m]))
    write_partitioned(work, f"ccl{rnd + 1:03d}", group, out, hash_part(out["a"], parts), parts)
    return {"component_rows": len(rows)}


def write_group_removals(work: Path, rnd: int, group: int, parts: int, n_shards: int) -> int:
    """After round ``rnd``'s large-star found the fixed point: its output rows (leaf, centre) of this
    group's leaves are the removals (document, kept document). Returns how many."""
    rows = unique_pairs(read_partition(work, f"ccs{rnd:03d}", group, parts, PAIR_DTYPE))
    rm = np.zeros(len(rows), dtype=REMOVAL_DTYPE)
    rm["doc"], rm["keep"] = rows["a"], rows["b"]
    write_removals(work, f"rm-g{group:05d}", rm, n_shards)
    return len(rm)


def group_removals_file(shard: int, n_shards: int, parts: int) -> str:
    """The removal table that holds ``shard``'s rows."""
    return f"rm-g{int(shard * parts // max(1, n_shards)):05d}.npy"
