"""The packing loader: document boundaries, mixture proportions, schedule, FIM, exact resume (ranks: test_per_rank.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pretrain.data.fim import FIMTokens, fim_inverse
from pretrain.data.loader import IGNORE, PackedLoader, SpecialIds
from pretrain.data.loader_config import FIMConfig, LoaderConfig, MixtureConfig, MixturePoint
from pretrain.data.mixture import Mixture
from pretrain.data.shards import lookup


def make(shards, tokenizer, weights=None, seq_len=32, micro_batch=4, seed=0, **cfg):
    counts = {d: s.num_tokens for d, s in shards.items()}
    mix = Mixture(weights if isinstance(weights, MixtureConfig) else MixtureConfig(weights=weights or {}), counts)
    cfg.setdefault("chunk_tokens", 1024)  # small chunks exercise the refill path
    return PackedLoader(shards, seq_len, micro_batch, mix, LoaderConfig(**cfg), tokenizer, seed=seed)


def doc_tokens(entry):
    """Token ids of a lineage entry, read back from its shard."""
    from pathlib import Path

    from pretrain.data.shards import _Shard

    shard = _Shard(Path(entry[0]), None)
    s, n = int(shard.starts[entry[1]]), int(shard.lengths[entry[1]])
    return np.asarray(shard.tokens[s:s + n]).tolist()


def test_packed_rows_are_full_and_boundaries_are_exact(shards, tokenizer):
    loader = make(shards, tokenizer, {"prose": 1.0}, seq_len=48, micro_batch=3)
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    stream, lineage = [], []
    for _ in range(40):
        b = loader.next_batch()
        assert b.input_ids.shape == b.targets.shape == b.doc_ids.shape == (3, 48)
        assert b.input_ids.dtype == torch.int64 and b.domains == ["prose"] * 3
        ids, tg, doc = b.input_ids.numpy(), b.targets.numpy(), b.doc_ids.numpy()
        for r in range(3):
            # a new document id starts exactly at each BOS after the first position
            starts = np.nonzero(np.diff(doc[r]))[0] + 1
            assert np.all(ids[r, starts] == bos) and np.all(np.diff(doc[r]) <= 1) and doc[r, 0] == 0
            # targets are the next tokens, except the EOS -> BOS crossing which is ignored
            crossing = starts - 1
            assert np.all(tg[r, crossing] == IGNORE) and np.all(ids[r, crossing] == eos)
            keep = np.setdiff1d(np.arange(47), crossing)
            assert np.array_equal(tg[r, keep], ids[r, keep + 1])
            assert len(b.lineage[r]) == doc[r, -1] + 1
            stream.extend(ids[r].tolist())
            lineage.extend(b.lineage[r] if not lineage or b.lineage[r][0] != lineage[-1] else b.lineage[r][1:])
    assert loader.packing_efficiency == 1.0
    # the stream splits into BOS doc EOS units whose bodies are the lineage documents, in order
    cuts = [i for i, t in enumerate(stream) if t == bos]
    assert cuts[0] == 0
    for k, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        assert stream[b - 1] == eos
        assert stream[a + 1:b - 1] == doc_tokens(lineage[k])
    assert lookup(*lineage[0]).source.startswith("synthetic:prose:")


def test_mixture_proportions_over_many_batches(shards, tokenizer):
    weights = {"code": 0.5, "prose": 0.3, "math": 0.2}
    loader = make(shards, tokenizer, weights, seq_len=16, micro_batch=8, lineage=False)
    counts = {d: 0 for d in shards}
    n_batches = 300
    for _ in range(n_batches):
        for d in loader.next_batch().domains:
            counts[d] += 1
    n = 8 * n_batches
    assert counts["multilingual"] == 0
    for d, w in weights.items():
        sd = (w * (1 - w) / n) ** 0.5
        assert abs(counts[d] / n - w) < 4 * sd, (d, counts[d] / n, w)


def test_schedule_change_applies_at_the_right_step(shards, tokenizer):
    sched = MixtureConfig(schedule=[MixturePoint(0.0, {"code": 1}), MixturePoint(0.5, {"code": 1}),
                                    MixturePoint(0.5, {"math": 1}), MixturePoint(1.0, {"math": 1})],
                          anneal_weights={"prose": 1.0}, anneal_start=0.9)
    loader = make(shards, tokenizer, sched, micro_batch=2)
    steps = 20
    for step in range(steps):
        loader.set_progress(step / steps)
        domains = set(loader.next_batch().domains)
        expected = "code" if step <= 10 else "math" if step < 18 else "prose"
        assert domains == {expected}, step


def test_fim_format_and_rate(shards, tokenizer):
    ids = FIMTokens(tokenizer.fim_prefix_id, tokenizer.fim_middle_id, tokenizer.fim_suffix_id)
    fim = FIMConfig(rate=0.5, spm_rate=0.5, domains=["code"])
    loader = make(shards, tokenizer, {"code": 0.5, "prose": 0.5}, seq_len=2048, micro_batch=8, pack=False, fim=fim)
    n_fim = n_code = n_spm = 0
    for _ in range(30):
        b = loader.next_batch()
        for r in range(8):
            row = b.input_ids[r].tolist()
            n = int((b.targets[r] != IGNORE).sum())
            # one whole document per row (they all fit in 2048): BOS body, and EOS as the last target
            assert row[0] == tokenizer.bos_id and int(b.targets[r, n - 1]) == tokenizer.eos_id
            body = row[1:n]
            original = doc_tokens(b.lineage[r][0])
            specials = {ids.prefix, ids.middle, ids.suffix}
            if b.domains[r] != "code":
                assert body == original and not specials & set(body)
                continue
            n_code += 1
            if body and body[0] == ids.prefix:
                n_fim += 1
                n_spm += body[1] == ids.suffix
                assert sum(t in specials for t in body) == 3
                assert fim_inverse(np.array(body), ids).tolist() == original
            else:
                assert body == original
    assert n_code > 60
    assert abs(n_fim / n_code - 0.5) < 4 * (0.25 / n_code) ** 0.5
    assert 0 < n_spm < n_fim


@pytest.mark.parametrize("pack", [True, False])
def test_resume_gives_exactly_the_same_batches(shards, tokenizer, pack):
    sched = MixtureConfig(schedule=[MixturePoint(0.0, {"code": 1, "prose": 1}), MixturePoint(1.0, {"math": 1})])
    kw = dict(weights=sched, seq_len=40, micro_batch=3, seed=7, pack=pack, fim=FIMConfig(rate=0.5))
    ref = make(shards, tokenizer, **kw)
    steps, cut = 60, 23
    batches, saved = [], None
    for step in range(steps):
        if step == cut:
            buf = io.BytesIO()
            torch.save(ref.state_dict(), buf)  # through a real checkpoint round trip
            saved = buf.getvalue()
        ref.set_progress(step / steps)
        batches.append(ref.next_batch())
    resumed = make(shards, tokenizer, **kw)
    resumed.load_state_dict(torch.load(io.BytesIO(saved), weights_only=True))
    for step in range(cut, steps):
        resumed.set_progress(step / steps)
        b, a = resumed.next_batch(), batches[step]
        for f in ("input_ids", "targets", "doc_ids"):
            assert torch.equal(getattr(a, f), getattr(b, f)), (step, f)
        assert a.domains == b.domains and a.lineage == b.lineage
    assert resumed.packing_efficiency == pytest.approx(ref.packing_efficiency)
    other_seed = make(shards, tokenizer, **{**kw, "seed": 8})
    assert not torch.equal(other_seed.next_batch().input_ids, batches[0].input_ids)


def test_padded_mode_reports_efficiency_and_masks_padding(shards, tokenizer):
    loader = make(shards, tokenizer, {"math": 1.0}, seq_len=256, micro_batch=4, pack=False)
    nonpad = 0
    for _ in range(10):
        b = loader.next_batch()
        ids = b.input_ids.numpy()
        pad = ids == tokenizer.pad_id
        nonpad += int((~pad).sum())
        assert np.all(b.targets.numpy()[pad] == IGNORE)
        assert np.all(b.doc_ids.numpy()[pad] == 1) and np.all(b.doc_ids.numpy()[~pad] == 0)
        assert all(len(row) == 1 for row in b.lineage)
    assert loader.packing_efficiency == pytest.approx(nonpad / (10 * 4 * 256))
    assert loader.packing_efficiency < 0.9  # math documents are short: padding wastes compute


def test_cu_seqlens_match_doc_ids(shards, tokenizer):
    b = make(shards, tokenizer, {"prose": 1.0}, seq_len=64, micro_batch=2).next_batch()
    cu = b.cu_seqlens().tolist()
    assert cu[0] == 0 and cu[-1] == 128 and 64 in cu
    flat = b.doc_ids.reshape(-1).tolist()
    for a, z in zip(cu, cu[1:], strict=False):
        assert len(set(flat[a:z])) == 1


def test_without_doc_mask_targets_are_plain_next_tokens(shards, tokenizer):
    b = make(shards, tokenizer, {"prose": 1.0}, seq_len=64, doc_mask=False).next_batch()
    assert torch.equal(b.targets[:, :-1], b.input_ids[:, 1:])
    assert int(b.doc_ids.abs().sum()) == 0


def test_errors(shards, tokenizer):
    mix = Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()})
    no_fim = SpecialIds(bos=tokenizer.bos_id, eos=tokenizer.eos_id, pad=tokenizer.pad_id)
    with pytest.raises(ValueError, match="no FIM special tokens"):
        PackedLoader(shards, 8, 2, mix, LoaderConfig(fim=FIMConfig(rate=0.5)), no_fim)
    with pytest.raises(ValueError, match="mixture domain 'code' has no token shards"):
        PackedLoader({"math": shards["math"]}, 8, 2, mix, LoaderConfig(), tokenizer)
    loader = PackedLoader(shards, 8, 2, mix, LoaderConfig(), tokenizer, seed=1)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="seed=1"):
        PackedLoader(shards, 8, 2, mix, LoaderConfig(), tokenizer, seed=2).load_state_dict(state)


def test_documents_spread_over_several_shards(corpus, tokenizer, tmp_path):
    from pretrain.data.record import write_jsonl
    from pretrain.data.shards import load_split
    from pretrain.data.tokenize import tokenize_corpus

    write_jsonl(tmp_path / "in.jsonl", [d for d in corpus if d.domain == "code"])
    tokenize_corpus(tmp_path / "in.jsonl", tokenizer, tmp_path / "tok", val_fraction=0.0, batch_docs=4,
                    shard_tokens=1500)
    shards = load_split(tmp_path / "tok", "train", tokenizer.hash)
    assert len(shards["code"].shards) > 3
    loader = make(shards, tokenizer, seq_len=64, micro_batch=4)
    stream, lineage = [], []
    for _ in range(60):
        b = loader.next_batch()
        for r in range(4):
            stream.extend(b.input_ids[r].tolist())
            lineage.extend(b.lineage[r] if not lineage or b.lineage[r][0] != lineage[-1] else b.lineage[r][1:])
    cuts = [i for i, t in enumerate(stream) if t == tokenizer.bos_id]
    assert len({path for path, _ in lineage}) > 1
    for k, (a, z) in enumerate(zip(cuts, cuts[1:], strict=False)):
        assert stream[a + 1:z - 1] == doc_tokens(lineage[k])
