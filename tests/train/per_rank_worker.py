"""Worker for test_per_rank_gloo.py, run under torchrun: each rank builds its share of the loader
stream, the ranks exchange their rows and target counts over gloo, and rank 0 writes what it gathered."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from pretrain.data.loader import PackedLoader
from pretrain.data.loader_config import LoaderConfig, MixtureConfig
from pretrain.data.mixture import Mixture
from pretrain.data.shards import load_split
from pretrain.tokenizer import load_tokenizer


def build(tokens: str, tokenizer: str, rank: int, world: int) -> PackedLoader:
    tok = load_tokenizer(tokenizer)
    shards = load_split(tokens, "train", tok.hash)
    mix = Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()})
    return PackedLoader(shards, 32, 2, mix, LoaderConfig(chunk_tokens=1024), tok, seed=11, rank=rank, world_size=world)


def main(tokens: str, tokenizer: str, out: str, steps: int, per_rank: int) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = build(tokens, tokenizer, rank, world)
    rows, targets = [], []
    for _ in range(steps):
        mine, counted = [], 0
        for _ in range(per_rank):
            mine.append(loader.next_batch())
            counted += loader.round_targets  # what the trainer uses: every rank's targets, no communication
        rows.append([(b.input_ids, b.targets, b.doc_ids, b.lineage) for b in mine])
        n = torch.tensor([float(sum(int((b.targets != -100).sum()) for b in mine))], dtype=torch.float64)
        dist.all_reduce(n)  # the same count the hard way, to compare
        targets.append((int(n.item()), counted))
    gathered: list = [None] * world
    dist.all_gather_object(gathered, {"rows": rows, "state": loader.state_dict(), "read": loader.tokens_read})
    if rank == 0:
        torch.save({"ranks": gathered, "targets": targets}, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
