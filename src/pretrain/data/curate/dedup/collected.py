"""Shared machinery of the dedup steps: the collected-documents base class and single-process connected
components (for steps whose edges fit one task; MinHash runs its components in rounds, see components.py).

Keep rule (every dedup step): **in each duplicate cluster the document first in input order is kept**
(sorted input files, then position in the file: the smallest document key, see
:mod:`pretrain.data.curate.dedup.store`); every other member is removed with ``meta.duplicate_of`` =
the kept document's whole id. URL dedup instead keeps the most recent capture, ties broken the same way.
Clusters, pairs and keys never depend on the number of workers or of hash partitions, so neither do
the decisions.
"""

from __future__ import annotations

import numpy as np

from pretrain.data.curate.dedup.components import group_of, group_removals_file
from pretrain.data.curate.dedup.store import (
    REMOVAL_DTYPE,
    Removals,
    auto_partitions,
    read_partition,
    save_ids,
    write_partitioned,
    write_removals,
)
from pretrain.data.curate.registry import GlobalStep, Verdict
from pretrain.data.record import Document


class CollectedStep(GlobalStep):
    """Collect the positions and ids of the documents a dedup step sees; apply its removal tables."""

    partitions_option = "partitions"
    apply_files = ("rm*", "ids-s*")  # the removal tables and every shard's ids (a kept document's id)
    grouped_removals = False
    """True for a step whose partition tasks hand their removals to :meth:`emit_removals` and which runs
    :meth:`gather_removals` as its last stage (one task per group of shards): a shard's filter pass then
    reads its group's table alone, not one table per partition (P x shards opens in all)."""

    def parts(self) -> int:
        return int(getattr(self.o, self.partitions_option, 0) or auto_partitions(self.n_shards))

    def begin_collect(self, shard: int) -> None:
        self.shard = shard
        self.positions: list[int] = []
        self.ids: list[str] = []

    def _remember(self, doc: Document, idx: int) -> None:
        self.positions.append(idx)
        self.ids.append(doc.id)

    def _save_ids(self) -> None:
        save_ids(self.work, self.shard, self.positions, self.ids)

    def removal_groups(self) -> int:
        return -(-self.parts() // 8)

    def emit_removals(self, part: int, rows: np.ndarray) -> None:
        """Partition task ``part``'s removal rows, grouped by the removed document's shard group."""
        g = self.removal_groups()
        write_partitioned(self.work, "dups", part, rows, group_of(rows["doc"], self.n_shards, g), g)

    def gather_removals(self, group: int) -> dict:
        """The removal table of one shard group, from every partition task's rows."""
        rows = read_partition(self.work, "dups", group, self.parts(), REMOVAL_DTYPE)
        write_removals(self.work, f"rm-g{group:05d}", rows, self.n_shards)
        return {}

    def begin_apply(self, shard: int) -> None:
        pattern = group_removals_file(shard, self.n_shards, self.removal_groups()) if self.grouped_removals else "rm*.npy"
        self.remove = Removals(self.work, pattern).for_shard(shard)

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        keep = self.remove.get(idx)
        if keep is None:
            return None
        doc.meta["duplicate_of"] = keep
        return "duplicate", f"duplicate of {keep} (the first of its cluster in input order is kept)"


def components(edges: np.ndarray) -> np.ndarray:
    """Removal rows (doc, keep) from undirected edges (n, 2) of document keys: every node of a
    connected component is removed in favour of the component's smallest key. Memory is linear in
    the number of edges (nodes that are in no pair never appear)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(edges):
        return np.zeros(0, dtype=REMOVAL_DTYPE)
    nodes, inv = np.unique(edges.reshape(-1), return_inverse=True)  # sorted: index order = input order
    inv = inv.reshape(-1, 2).astype(np.int32)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(inv), dtype=np.int8), (inv[:, 0], inv[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    root = np.full(label.max() + 1, n, dtype=np.int64)
    np.minimum.at(root, label, np.arange(n))
    keep_idx = root[label]
    dup = keep_idx != np.arange(n)
    out = np.zeros(int(dup.sum()), dtype=REMOVAL_DTYPE)
    out["doc"], out["keep"] = nodes[dup], nodes[keep_idx[dup]]
    return out
