"""The open models' variants are config fields of our own model: sizes are counted exactly, they train,
and each one changes the function (none is silently ignored)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain.model import Transformer
from pretrain.model.config import MoEConfig

VARIANTS = {
    "attn_head_dim": 16, "qkv_bias": True, "attn_out_bias": True, "mlp_bias": True, "activation": "gelu_tanh",
    "norm_placement": "sandwich", "norm_unit_offset": True, "scale_embeddings": True, "attn_scale": 0.3,
    "attn_softcap": 5.0, "logit_softcap": 3.0, "rope_pattern": "RN", "qk_norm": True,
}


@pytest.mark.parametrize("overrides", [
    VARIANTS,
    {"norm_placement": "post", "qk_norm": True, "qk_norm_scope": "all", "qkv_bias": True},
    {"mlp_bias": True, "moe": MoEConfig(n_experts=4, top_k=2, n_shared=1, first_dense_layers=1)},
], ids=["gemma-like", "olmo-like", "moe-bias"])
def test_parameter_count_is_exact_and_a_training_step_works(overrides):
    cfg = tiny_config(**overrides)
    model = Transformer(cfg)
    assert cfg.num_params() == model.num_params()
    x = torch.randint(0, 96, (2, 16))
    out = model(x, targets=x)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for p in model.parameters())


def test_unit_offset_norms_start_at_zero_and_biases_at_zero():
    model = Transformer(tiny_config(norm_unit_offset=True, qkv_bias=True))
    assert torch.equal(model.norm.weight, torch.zeros(32))
    assert torch.equal(model.layers[0].attn.wq.bias, torch.zeros_like(model.layers[0].attn.wq.bias))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_changes_the_logits(name):
    torch.manual_seed(0)
    base = Transformer(tiny_config(init_std=0.3)).eval()
    with torch.no_grad():  # biases and (1 + w) offsets start at zero: give them values to matter
        for p in base.parameters():
            p.add_(torch.rand_like(p) * 0.1)
    variant = Transformer(tiny_config(init_std=0.3, **{name: VARIANTS[name]})).eval()
    shared = {k: v for k, v in base.state_dict().items() if k in variant.state_dict()
              and variant.state_dict()[k].shape == v.shape}
    variant.load_state_dict(shared, strict=False)
    with torch.no_grad():
        for key, p in variant.named_parameters():
            if key not in shared:
                p.add_(torch.rand_like(p) * 0.1)
    x = torch.randint(0, 96, (1, 24))
    with torch.no_grad():
        assert not torch.allclose(base(x).logits, variant(x).logits, atol=1e-4), name
