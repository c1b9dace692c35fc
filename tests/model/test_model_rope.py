"""RoPE scalings reproduce transformers' rope_type implementations; switching scaling on a trained model."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain.model import Transformer
from pretrain.model.config import RopeScalingConfig
from pretrain.model.rope import apply_rotary, rope_frequencies

transformers = pytest.importorskip("transformers")

HEAD_DIM, THETA, ORIG = 64, 10000.0, 256

CASES = [
    ("linear", RopeScalingConfig(type="linear", factor=4.0), {"factor": 4.0}),
    ("dynamic", RopeScalingConfig(type="dynamic", factor=2.0), {"factor": 2.0}),
    ("yarn", RopeScalingConfig(type="yarn", factor=8.0),
     {"factor": 8.0, "beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": ORIG}),
    ("yarn", RopeScalingConfig(type="yarn", factor=4.0, beta_fast=16.0, beta_slow=2.0, attn_factor=1.3),
     {"factor": 4.0, "beta_fast": 16.0, "beta_slow": 2.0, "attention_factor": 1.3, "original_max_position_embeddings": ORIG}),
    ("llama3", RopeScalingConfig(type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0),
     {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": ORIG}),
]


def _hf_config(params: dict):
    return transformers.LlamaConfig(hidden_size=HEAD_DIM * 4, num_attention_heads=4, max_position_embeddings=ORIG,
                                    rope_parameters={"rope_theta": THETA, **params})


@pytest.mark.parametrize(("kind", "ours", "params"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("seq_len", [None, 4 * ORIG])
def test_inv_freq_and_attention_factor_match_transformers(kind, ours, params, seq_len):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf_inv, hf_factor = ROPE_INIT_FUNCTIONS[kind](_hf_config({"rope_type": kind, **params}), "cpu", seq_len=seq_len)
    inv, factor = rope_frequencies(HEAD_DIM, THETA, ours, ORIG, seq_len=seq_len)
    torch.testing.assert_close(inv, hf_inv.float(), rtol=0, atol=1e-6)
    assert abs(factor - hf_factor) < 1e-6


def test_unscaled_matches_default_rope_and_yarn_default_attention_factor():
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    rot = LlamaRotaryEmbedding(_hf_config({"rope_type": "default"}))
    inv, factor = rope_frequencies(HEAD_DIM, THETA, RopeScalingConfig(), ORIG)
    torch.testing.assert_close(inv, rot.inv_freq, rtol=0, atol=1e-6)
    assert factor == 1.0
    _, yarn = rope_frequencies(HEAD_DIM, THETA, RopeScalingConfig(type="yarn", factor=16.0), ORIG)
    assert yarn == pytest.approx(0.1 * torch.log(torch.tensor(16.0)).item() + 1.0)


def test_dynamic_ntk_is_identity_within_the_original_context():
    base, _ = rope_frequencies(HEAD_DIM, THETA, RopeScalingConfig(), ORIG)
    dyn, _ = rope_frequencies(HEAD_DIM, THETA, RopeScalingConfig(type="dynamic", factor=4.0), ORIG, seq_len=ORIG)
    torch.testing.assert_close(dyn, base)
    longer, _ = rope_frequencies(HEAD_DIM, THETA, RopeScalingConfig(type="dynamic", factor=4.0), ORIG, seq_len=3 * ORIG)
    assert (longer[1:] < base[1:]).all()  # a larger base lowers every frequency but the first


def test_rotation_preserves_norm_and_relative_positions():
    cfg = tiny_config()
    model = Transformer(cfg)
    cos, sin = model.rope(16)
    q = torch.randn(1, 1, 16, cfg.head_dim)
    rq = apply_rotary(q, cos, sin)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    # <R_m q, R_n k> depends only on m - n.
    k = torch.randn(1, 1, 1, cfg.head_dim).expand(1, 1, 16, cfg.head_dim)
    qq = torch.randn(1, 1, 1, cfg.head_dim).expand(1, 1, 16, cfg.head_dim)
    a, b = apply_rotary(qq, cos, sin), apply_rotary(k, cos, sin)
    torch.testing.assert_close((a[..., 5, :] * b[..., 2, :]).sum(), (a[..., 9, :] * b[..., 6, :]).sum())


def test_switch_scaling_on_a_trained_model_for_context_extension():
    cfg = tiny_config(max_seq_len=16, init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (1, 16))
    before = model(x).logits
    model.set_rope_scaling(RopeScalingConfig(type="yarn", factor=4.0), max_seq_len=64)
    assert model.cfg.rope_scaling.original_max_position == 16
    assert model.cfg.max_seq_len == 64
    long = torch.randint(0, cfg.vocab_size, (1, 64))
    assert model(long).logits.shape == (1, 64, cfg.vocab_size)
    assert not torch.allclose(model(x).logits, before)  # the positions are now interpolated
    model.set_rope_scaling(RopeScalingConfig())
    torch.testing.assert_close(model(x).logits, before)


def test_positions_beyond_the_table_grow_it():
    model = Transformer(tiny_config(max_seq_len=8))
    cos, _ = model.rope(4, offset=30)
    assert cos.shape[-2] == 4 and model.rope.cos.shape[0] >= 34


def test_tables_stay_float32_after_casting_the_model():
    model = Transformer(tiny_config(init_std=0.2))
    x = torch.randint(0, 96, (1, 16))
    reference = model(x).logits
    model.to(torch.bfloat16)
    cos, _ = model.rope(16)
    assert cos.dtype == torch.float32
    torch.testing.assert_close(model(x).logits.float(), reference, rtol=0.1, atol=0.1)
