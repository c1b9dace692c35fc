"""Generation: KV cache equals recomputation, greedy is deterministic, sampling filters, speculative decoding."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain.model import Transformer
from pretrain.model.config import MoEConfig, MTPConfig
from pretrain.model.generate import generate, sample_next


@pytest.fixture
def model() -> Transformer:
    return Transformer(tiny_config(init_std=0.3, max_seq_len=64, mtp=MTPConfig(depth=1))).eval()


def test_kv_cache_logits_equal_full_forward(model):
    x = torch.randint(0, 96, (2, 12))
    full = model(x).logits
    cache = model.new_cache(2, 12)
    first = model(x[:, :7], cache=cache).logits
    rest = [model(x[:, t : t + 1], cache=cache).logits for t in range(7, 10)]
    last = model(x[:, 10:], cache=cache).logits  # two tokens at once after a prefix (offset causal mask)
    stepped = torch.cat([first, *rest, last], dim=1)
    torch.testing.assert_close(stepped, full, rtol=1e-5, atol=1e-5)
    assert cache.length == 12


def test_cached_generation_equals_uncached(model):
    x = torch.randint(0, 96, (3, 5))
    a = generate(model, x, 20, greedy=True)
    b = generate(model, x, 20, greedy=True, use_cache=False)
    assert a.shape == (3, 25)
    assert torch.equal(a, b)
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    s1 = generate(model, x, 15, temperature=0.9, top_k=20, top_p=0.9, generator=g1)
    s2 = generate(model, x, 15, temperature=0.9, top_k=20, top_p=0.9, generator=g2, use_cache=False)
    assert torch.equal(s1, s2)


def test_moe_model_generation_with_cache():
    m = Transformer(tiny_config(init_std=0.3, moe=MoEConfig(n_experts=4, top_k=2))).eval()
    x = torch.randint(0, 96, (2, 4))
    assert torch.equal(generate(m, x, 10, greedy=True), generate(m, x, 10, greedy=True, use_cache=False))


def test_greedy_is_deterministic_and_restores_training_mode(model):
    model.train()
    x = torch.randint(0, 96, (1, 6))
    a = generate(model, x, 12, greedy=True)
    assert torch.equal(a, generate(model, x, 12, greedy=True))
    assert model.training
    # top_k = 1 sampling is greedy.
    assert torch.equal(a, generate(model, x, 12, temperature=1.0, top_k=1))


def test_sampling_filters():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0, -1.0]])
    gen = torch.Generator().manual_seed(0)
    picks = {int(sample_next(logits, top_k=2, generator=gen)) for _ in range(200)}
    assert picks == {0, 1}
    # p(0) = 0.72, p(0) + p(1) = 0.99: top_p 0.5 keeps only token 0, top_p 0.9 keeps two.
    assert {int(sample_next(logits, top_p=0.5, generator=gen)) for _ in range(100)} == {0}
    assert {int(sample_next(logits, top_p=0.9, generator=gen)) for _ in range(300)} == {0, 1}
    assert int(sample_next(logits, temperature=0.0)) == 0


def test_eos_stops_and_pads(model):
    x = torch.randint(0, 96, (1, 4))
    free = generate(model, x, 10, greedy=True)
    eos = int(free[0, 6])  # pretend the third generated token is EOS
    out = generate(model, x, 10, greedy=True, eos_id=eos)
    first = int((out[0, 4:] == eos).nonzero()[0])
    assert out.shape[1] == 4 + first + 1 and int(out[0, -1]) == eos


def test_speculative_decoding_equals_greedy(model):
    x = torch.randint(0, 96, (1, 6))
    stats: dict = {}
    spec = generate(model, x, 25, greedy=True, speculative=True, stats=stats)
    assert torch.equal(spec, generate(model, x, 25, greedy=True))
    assert stats["drafted"] > 0 and 0 <= stats["accepted"] <= stats["drafted"]
    assert stats["forwards"] == 25 - stats["accepted"] or stats["forwards"] <= 25


def test_speculative_accepts_drafts_when_mtp_agrees(model):
    """Make MTP module 1 an exact copy of what the main model would predict two steps ahead is hard; instead,
    force acceptance by making the model a bigram table: the prediction only depends on the last token, so a
    drafter that applies the table to the pending token is always right."""
    torch.manual_seed(0)
    cfg = tiny_config(n_layers=1, mtp=MTPConfig(depth=1))
    m = Transformer(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        for norm in (m.norm, m.mtp[0].norm, m.mtp[0].embed_norm, m.mtp[0].hidden_norm):
            norm.weight.fill_(1.0)
        m.tok_emb.weight.copy_(torch.randn(96, 32))
        m.mtp[0].proj.weight[:, 32:] = torch.eye(32)  # MTP input = norm(embedding of the pending token)
    stats: dict = {}
    x = torch.randint(0, 96, (1, 3))
    spec = generate(m, x, 12, greedy=True, speculative=True, stats=stats)
    assert torch.equal(spec, generate(m, x, 12, greedy=True))
    assert stats["accepted"] == stats["drafted"] > 0
    assert stats["forwards"] < 12


def test_generate_rejects_bad_input(model):
    with pytest.raises(ValueError, match="input_ids"):
        generate(model, torch.zeros(3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="greedy"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 4, temperature=1.0, speculative=True)
