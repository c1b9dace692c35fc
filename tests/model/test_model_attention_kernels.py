"""Attention kernels by device: every path (is_causal, dense mask, FlexAttention block mask, KV cache) gives
the attention a per-pair reference defines, with document masks and sliding windows."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain import configlib
from pretrain.model import Transformer
from pretrain.model.generate import generate
from pretrain.model.masking import AttentionPlan

FLEX_WARNING = "ignore:.*flex_attention.*"


def reference_attention(q, k, v, doc_ids=None, window=0, softcap=0.0):
    """softmax over the allowed keys, written out pair by pair: j <= i, same document, i - j < window."""
    B, H, T, D = q.shape
    rep = H // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    out = torch.zeros_like(q)
    for b in range(B):
        for i in range(T):
            keys = [j for j in range(i + 1) if (doc_ids is None or doc_ids[b, i] == doc_ids[b, j])
                    and (not window or i - j < window)]
            s = q[b, :, i, None] @ k[b, :, keys].transpose(-1, -2) / D**0.5
            if softcap:
                s = softcap * torch.tanh(s / softcap)
            out[b, :, i] = (s.softmax(-1) @ v[b, :, keys])[:, 0]
    return out


def _qkv(B=2, H=4, Hkv=2, T=20, D=8):
    return torch.randn(B, H, T, D), torch.randn(B, Hkv, T, D), torch.randn(B, Hkv, T, D)


def _docs(B=2, T=20):
    return torch.tensor([[0] * 7 + [1] * 9 + [2] * (T - 16), [0] * 3 + [1] * (T - 3)])[:B]


@pytest.mark.filterwarnings(FLEX_WARNING)
@pytest.mark.parametrize("kernel", ["sdpa", "flex"])
@pytest.mark.parametrize("docs", [False, True], ids=["no-docs", "docs"])
@pytest.mark.parametrize("window", [0, 5, 64], ids=["full", "window5", "window-wider-than-T"])
@pytest.mark.parametrize("softcap", [0.0, 2.0], ids=["", "softcap"])
def test_each_kernel_equals_the_pairwise_reference(kernel, docs, window, softcap):
    q, k, v = _qkv()
    doc_ids = _docs() if docs else None
    y = AttentionPlan(q.shape[2], doc_ids, kernel).attend(q, k, v, window, softcap=softcap)
    torch.testing.assert_close(y, reference_attention(q, k, v, doc_ids, window, softcap), rtol=0, atol=2e-6)


@pytest.mark.filterwarnings(FLEX_WARNING)
def test_model_forward_flex_equals_sdpa_with_documents_and_sssl_windows():
    cfg = tiny_config(n_layers=4, sliding_window=4, window_pattern="SSSL", init_std=0.2)
    model = Transformer(cfg).eval()
    x = torch.randint(0, 96, (2, 20))
    with torch.no_grad():
        dense = model(x, doc_ids=_docs()).logits
        model.cfg.attention_kernel = "flex"
        flex = model(x, doc_ids=_docs()).logits
        full = Transformer(tiny_config(n_layers=4, init_std=0.2))
        full.load_state_dict(model.state_dict())
        unwindowed = full(x, doc_ids=_docs()).logits
    torch.testing.assert_close(flex, dense, rtol=0, atol=1e-5)
    # The window is not a no-op: positions beyond it differ from full attention, earlier ones do not.
    assert torch.allclose(dense[:, :4], unwindowed[:, :4], atol=1e-5)
    assert not torch.allclose(dense[:, 5:], unwindowed[:, 5:], atol=1e-3)


@pytest.mark.filterwarnings(FLEX_WARNING)
@pytest.mark.parametrize("pattern, kernel", [("S", "sdpa"), ("SL", "sdpa"), ("LS", "sdpa"), ("SL", "flex")])
def test_kv_cache_logits_equal_full_forward_past_the_window(pattern, kernel):
    model = Transformer(tiny_config(sliding_window=3, window_pattern=pattern, init_std=0.2,
                                    attention_kernel=kernel)).eval()
    x = torch.randint(0, 96, (2, 24))
    with torch.no_grad():
        full = model(x).logits
        cache = model.new_cache(2, 24)
        steps = [model(x[:, :5], cache=cache).logits]  # a prefill longer than the window
        steps += [model(x[:, i : i + 1], cache=cache).logits for i in range(5, 16)]
        steps.append(model(x[:, 16:], cache=cache).logits)  # a multi-token chunk after the window
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)


def test_generation_with_cache_equals_without_past_the_window():
    model = Transformer(tiny_config(sliding_window=4, window_pattern="SSL", n_layers=3, max_seq_len=64)).eval()
    prompt = torch.randint(0, 96, (2, 3))
    cached = generate(model, prompt, 30, greedy=True)
    uncached = generate(model, prompt, 30, greedy=True, use_cache=False)
    assert torch.equal(cached, uncached)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    sampled = generate(model, prompt, 30, temperature=1.0, generator=g1)
    assert torch.equal(sampled, generate(model, prompt, 30, temperature=1.0, generator=g2, use_cache=False))


def test_speculative_decoding_with_a_window_is_greedy_decoding():
    from pretrain.model.config import MTPConfig

    model = Transformer(tiny_config(sliding_window=3, window_pattern="S", mtp=MTPConfig(depth=1), init_std=0.2)).eval()
    prompt = torch.randint(0, 96, (1, 4))
    assert torch.equal(generate(model, prompt, 20, greedy=True, speculative=True),
                       generate(model, prompt, 20, greedy=True, use_cache=False))


@pytest.mark.parametrize("overrides, field", [
    ({"window_pattern": "SX", "sliding_window": 4}, "window_pattern"),
    ({"window_pattern": "SL"}, "sliding_window"),
    ({"sliding_window": 8}, "window_pattern"),
    ({"attention_kernel": "triton"}, "attention_kernel"),
])
def test_bad_window_settings_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"model.{field}"):
        configlib.validate(tiny_config(**overrides), "model")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention backward needs CUDA")
@pytest.mark.parametrize("window", [0, 96])
def test_flex_gradients_equal_dense_on_cuda(window):
    torch.manual_seed(0)
    cfg = tiny_config(dim=128, n_heads=4, n_kv_heads=2, max_seq_len=512, sliding_window=window,
                      window_pattern="SL" if window else "L", init_std=0.05)
    dense = Transformer(cfg).cuda()
    flex = Transformer(tiny_config(**{**vars(cfg), "attention_kernel": "flex"})).cuda()
    flex.load_state_dict(dense.state_dict())
    x = torch.randint(0, 96, (2, 512), device="cuda")
    docs = torch.cat([torch.zeros(2, 200), torch.ones(2, 312)], dim=1).long().cuda()
    for model in (dense, flex):
        model.cfg.attention_kernel = "sdpa" if model is dense else "flex"
        model(x, targets=x, doc_ids=docs).loss.backward()
    for (name, a), b in zip(dense.named_parameters(), flex.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)
