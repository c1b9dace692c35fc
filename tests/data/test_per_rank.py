"""Per-rank data: rank r of N builds only its share of one global stream of micro-batches.

The properties: the union of the ranks' rows for a step is exactly the single-process rows of that
step (same rows, same order, same document ids, targets, lineage and cu_seqlens); each rank reads only
about 1/N of the tokens; the saved state is the same on every rank and resumes under another world
size by re-splitting the same stream.
"""

from __future__ import annotations

import io

import pytest
import torch

from pretrain.data.loader import PackedLoader
from pretrain.data.loader_config import FIMConfig, LoaderConfig, MixtureConfig, MixturePoint
from pretrain.data.mixture import Mixture

SCHEDULE = MixtureConfig(schedule=[MixturePoint(0.0, {"prose": 0.7, "code": 0.2, "math": 0.1}),
                                   MixturePoint(1.0, {"prose": 0.1, "code": 0.5, "math": 0.4})])
PER_RANK = 2  # micro-batches each rank accumulates per step


def make(shards, tokenizer, rank=0, world=1, pack=True, seq_len=24, micro_batch=3, mixture=SCHEDULE,
         doc_mask=True):
    counts = {d: s.num_tokens for d, s in shards.items()}
    cfg = LoaderConfig(pack=pack, doc_mask=doc_mask, fim=FIMConfig(rate=0.5, domains=["code"]), chunk_tokens=1024)
    return PackedLoader(shards, seq_len, micro_batch, Mixture(mixture, counts), cfg, tokenizer, seed=5,
                        rank=rank, world_size=world)


def steps_of(loader, first: int, last: int, total: int, per_step: int) -> list[list]:
    """Micro-batches of steps first..last-1, ``per_step`` each, with the schedule's progress set per step."""
    out = []
    for step in range(first, last):
        loader.set_progress(step / total)
        batches = []
        for _ in range(per_step):
            batches.append(loader.next_batch())
            batches[-1].round_targets = loader.round_targets
        out.append(batches)
    return out


def interleave(per_rank: list[list[list]]) -> list[list]:
    """Rank r's j-th micro-batch of a step is global micro-batch j * N + r of that step."""
    world = len(per_rank)
    return [[per_rank[i % world][s][i // world] for i in range(world * PER_RANK)] for s in range(len(per_rank[0]))]


def assert_same(got: list[list], want: list[list], world: int = 0) -> None:
    """Rows equal; with ``world``, each rank also knew its round's target count (all ranks' rows)."""
    assert len(got) == len(want)
    for s, (gs, ws) in enumerate(zip(got, want, strict=True)):
        for i, (g, w) in enumerate(zip(gs, ws, strict=True)):
            if world:
                r0 = i // world * world
                assert g.round_targets == sum(x.num_tokens for x in ws[r0:r0 + world]), (s, i)
            for f in ("input_ids", "targets", "doc_ids"):
                assert torch.equal(getattr(g, f), getattr(w, f)), (s, i, f)
            assert g.domains == w.domains and g.lineage == w.lineage, (s, i)
            assert torch.equal(g.cu_seqlens(), w.cu_seqlens()), (s, i)


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("pack", [True, False])
def test_union_of_ranks_is_the_single_process_stream(shards, tokenizer, world, pack):
    steps = 12
    single = make(shards, tokenizer, pack=pack)
    want = steps_of(single, 0, steps, steps, world * PER_RANK)
    ranks = [make(shards, tokenizer, r, world, pack) for r in range(world)]
    got = interleave([steps_of(ld, 0, steps, steps, PER_RANK) for ld in ranks])
    assert_same(got, want, world)
    # Between steps every rank stands at the global position: one state for all, equal to one process's.
    states = [ld.state_dict() for ld in ranks]
    for st in states:
        assert {k: v for k, v in st.items() if k not in ("rank", "world_size")} == \
            {k: v for k, v in single.state_dict().items() if k not in ("rank", "world_size")}
    assert all(ld.epochs() == single.epochs() for ld in ranks)
    assert all(ld.packing_efficiency == pytest.approx(single.packing_efficiency) for ld in ranks)


@pytest.mark.parametrize("world", [2, 4])
def test_each_rank_reads_only_its_share(shards, tokenizer, world):
    # A rank renders its rows' tokens and nothing of the others' (a document cut by a row boundary is
    # rendered only as far as the row goes): its share plus the token consecutive rows share.
    steps, seq_len, micro = 4, 512, 4
    single = make(shards, tokenizer, seq_len=seq_len, micro_batch=micro)
    steps_of(single, 0, steps, steps, world * PER_RANK)
    served = sum(s.tokens_served for s in single.streams.values())
    ranks = [make(shards, tokenizer, r, world, seq_len=seq_len, micro_batch=micro) for r in range(world)]
    for ld in ranks:
        steps_of(ld, 0, steps, steps, PER_RANK)
        bound = served / world + steps * PER_RANK * len(ld.streams)  # + 1 per domain block
        assert served / world <= ld.tokens_read <= bound, (ld.rank, ld.tokens_read, served)
    assert single.tokens_read >= served  # one process reads the whole stream


@pytest.mark.parametrize("domain", ["math", "code"])  # code: half its documents are FIM (3 more tokens)
@pytest.mark.parametrize(("pack", "doc_mask"), [(True, True), (True, False), (False, True)])
def test_skipping_across_several_epochs(shards, tokenizer, domain, pack, doc_mask):
    world, steps = 3, 8
    kw = dict(pack=pack, doc_mask=doc_mask, seq_len=256, micro_batch=4, mixture=MixtureConfig(weights={domain: 1.0}))
    single = make(shards, tokenizer, **kw)
    want = steps_of(single, 0, steps, steps, world * PER_RANK)
    got = interleave([steps_of(make(shards, tokenizer, r, world, **kw), 0, steps, steps, PER_RANK)
                      for r in range(world)])
    assert_same(got, want, world)
    assert single.epochs()[domain] > 1.5  # the skips crossed epoch ends (a new permutation each time)


@pytest.mark.parametrize(("before", "after"), [(2, 4), (4, 1), (1, 2)])
def test_resume_under_another_world_size_re_splits_the_stream(shards, tokenizer, before, after):
    steps, cut = 10, 4
    # The step's global micro-batches stay fixed (as with train.global_batch): 4 per step.
    per_step = 4
    single = make(shards, tokenizer)
    want = steps_of(single, 0, steps, steps, per_step)
    first = [make(shards, tokenizer, r, before) for r in range(before)]
    for ld in first:
        steps_of(ld, 0, cut, steps, per_step // before)
    buf = io.BytesIO()
    torch.save(first[0].state_dict(), buf)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    assert saved["world_size"] == before
    second = [make(shards, tokenizer, r, after) for r in range(after)]
    for ld in second:
        ld.load_state_dict(saved)
    parts = [steps_of(ld, cut, steps, steps, per_step // after) for ld in second]
    got = [[parts[i % after][s][i // after] for i in range(per_step)] for s in range(steps - cut)]
    assert_same(got, want[cut:])


def test_shard_and_bad_ranks(shards, tokenizer):
    a = make(shards, tokenizer)
    a.shard(1, 3)
    b = make(shards, tokenizer, rank=1, world=3)
    assert torch.equal(a.next_batch().input_ids, b.next_batch().input_ids)
    with pytest.raises(ValueError, match="rank 2 out of range for world_size 2"):
        make(shards, tokenizer, rank=2, world=2)
    with pytest.raises(ValueError, match="seed=5, this loader has seed=6"):
        other = make(shards, tokenizer)
        other.seed = 6
        other.load_state_dict(a.state_dict())


def test_states_of_the_former_document_split(shards, tokenizer):
    a = make(shards, tokenizer)
    a.next_batch()
    old = {**a.state_dict(), "version": 1}  # one process then meant what the global stream means now
    b = make(shards, tokenizer, rank=1, world=2)
    b.load_state_dict(old)
    assert b.batch_index == a.batch_index
    with pytest.raises(ValueError, match=r"loader state version 1 \(world_size=2\) cannot be read"):
        b.load_state_dict({**old, "world_size": 2})  # ranks then held different documents
