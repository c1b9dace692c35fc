"""Which documents a step trained on: [shard, index, record id, source] for spike and skip events."""

from __future__ import annotations


def lineage_summary(batches: list, limit: int = 16) -> tuple[list[list], int]:
    """The step's documents, first ``limit`` of them, and the total count (id and source are looked up in
    the shard's index; they are left out for streams without shard files)."""
    docs: list[list] = []
    for b in batches or []:
        for row in getattr(b, "lineage", None) or []:
            for shard, idx in row:
                docs.append([str(shard), int(idx)])
    out = []
    for shard, idx in docs[:limit]:
        entry = [shard, idx]
        try:
            from pretrain.data.shards import lookup

            src = lookup(shard, idx)
            entry += [src.id, src.source]
        except (OSError, ValueError, IndexError):
            pass  # not a shard file (an in-memory stream): the pair is all there is
        out.append(entry)
    return out, len(docs)


def step_batches(trainer) -> list:
    """The step's micro-batches in global order, for lineage: ``trainer.batches``, gathered from every
    rank when each rank holds only its own (per-rank data; a collective, so every rank must call it)."""
    if not getattr(trainer, "per_rank_data", False):
        return trainer.batches
    from types import SimpleNamespace

    import torch.distributed as dist

    world = trainer.dist.world
    parts: list = [None] * world
    dist.all_gather_object(parts, [b.lineage for b in trainer.batches])
    return [SimpleNamespace(lineage=parts[i % world][i // world]) for i in range(world * len(trainer.batches))]
