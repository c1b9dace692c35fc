"""The decoder's forward contract: shapes, loss bookkeeping, causality, document masking, GQA, sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from model_helpers import tiny_config

from pretrain.configlib import ConfigError, validate
from pretrain.model import ModelOutput, Transformer
from pretrain.model.config import MoEConfig, MTPConfig


def test_forward_shapes_and_loss_contract():
    cfg = tiny_config()
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (3, 16))
    y = torch.randint(0, cfg.vocab_size, (3, 16))
    y[0, :5] = -100
    out = model(x, targets=y)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 16, cfg.vocab_size)
    assert int(out.n_tokens) == 3 * 16 - 5
    valid = y != -100
    expected = F.cross_entropy(out.logits[valid], y[valid], reduction="sum")
    torch.testing.assert_close(out.ce_sum, expected)
    torch.testing.assert_close(out.loss, out.ce_sum / out.n_tokens)
    assert float(out.aux_loss) == 0.0 and float(out.mtp_loss) == 0.0
    assert model(x).loss is None
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_return_logits_false_and_logits_to_keep():
    cfg = tiny_config()
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 8))
    full = model(x, targets=x)
    lean = model(x, targets=x, return_logits=False)
    assert lean.logits is None
    torch.testing.assert_close(lean.loss, full.loss)
    last = model(x, logits_to_keep=1).logits
    torch.testing.assert_close(last, full.logits[:, -1:])


def test_changing_a_future_token_never_changes_past_logits():
    cfg = tiny_config(init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 20))
    x2 = x.clone()
    x2[:, 12] = (x2[:, 12] + 1) % cfg.vocab_size
    a, b = model(x).logits, model(x2).logits
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=1e-6)
    assert (a[:, 12:] - b[:, 12:]).abs().max() > 1e-4


def test_document_mask_isolates_documents():
    cfg = tiny_config(init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (1, 24))
    doc = torch.tensor([[0] * 10 + [1] * 14])
    x2 = x.clone()
    x2[0, :10] = torch.randint(0, cfg.vocab_size, (10,))  # rewrite document A entirely
    a = model(x, doc_ids=doc).logits
    b = model(x2, doc_ids=doc).logits
    torch.testing.assert_close(a[:, 10:], b[:, 10:], rtol=0, atol=1e-6)  # document B unchanged
    # Document B attends only to itself: same logits as running it alone at the same positions.
    alone = model(x[:, 10:], position_ids=torch.arange(10, 24)[None]).logits
    torch.testing.assert_close(a[:, 10:], alone, rtol=1e-5, atol=1e-5)
    # Without the mask, document A does leak into B.
    assert (model(x).logits[:, 10:] - model(x2).logits[:, 10:]).abs().max() > 1e-4


def test_single_document_mask_equals_causal_fast_path():
    cfg = tiny_config(init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 16))
    torch.testing.assert_close(model(x, doc_ids=torch.zeros_like(x)).logits, model(x).logits, rtol=1e-5, atol=1e-5)


def test_gqa_equals_mha_with_repeated_kv_heads():
    gqa_cfg = tiny_config(n_heads=4, n_kv_heads=2, init_std=0.2)
    mha_cfg = tiny_config(n_heads=4, n_kv_heads=4, init_std=0.2)
    gqa, mha = Transformer(gqa_cfg), Transformer(mha_cfg)
    state = gqa.state_dict()
    hd = gqa_cfg.head_dim
    for key in list(state):
        if key.endswith("attn.wk.weight") or key.endswith("attn.wv.weight"):
            w = state[key].view(2, hd, gqa_cfg.dim)  # [kv_heads, head_dim, dim]
            state[key] = w.repeat_interleave(2, dim=0).reshape(4 * hd, gqa_cfg.dim)  # query head h uses kv h // 2
    mha.load_state_dict(state)
    x = torch.randint(0, gqa_cfg.vocab_size, (2, 12))
    torch.testing.assert_close(gqa(x).logits, mha(x).logits, rtol=1e-5, atol=1e-5)


def test_multi_query_attention_and_qk_norm_run():
    cfg = tiny_config(n_kv_heads=1, qk_norm=True)
    model = Transformer(cfg)
    assert model.layers[0].attn.q_norm is not None
    out = model(torch.randint(0, cfg.vocab_size, (1, 8)), targets=torch.randint(0, cfg.vocab_size, (1, 8)))
    assert torch.isfinite(out.loss)


def test_tied_and_untied_embeddings():
    tied = Transformer(tiny_config(tie_embeddings=True))
    assert tied.lm_head.weight is tied.tok_emb.weight
    untied = Transformer(tiny_config(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_params() - tied.num_params() == 96 * 32


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tie_embeddings": False, "qk_norm": True},
        {"moe": MoEConfig(n_experts=4, top_k=2, n_shared=1, first_dense_layers=1)},
        {"mtp": MTPConfig(depth=2), "moe": MoEConfig(n_experts=3, top_k=1)},
    ],
)
def test_config_param_count_matches_model(overrides):
    cfg = tiny_config(**overrides)
    model = Transformer(cfg)
    assert cfg.num_params() == model.num_params()
    assert cfg.num_params(exclude_embeddings=True) == model.num_params(exclude_embeddings=True)


def test_flops_per_token_formula():
    cfg = tiny_config()
    n = cfg.num_params(exclude_embeddings=True) + cfg.vocab_size * cfg.dim
    expected = 6 * n + 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * 32
    assert Transformer(cfg).flops_per_token(32) == expected
    moe = tiny_config(moe=MoEConfig(n_experts=8, top_k=2))
    # Active parameters only: 8 experts cost what 2 do.
    assert moe.num_active_params() < moe.num_params()
    assert moe.flops_per_token(32) == 6 * (moe.num_active_params(exclude_embeddings=True) + 96 * 32) + 12 * 2 * 4 * 8 * 32


def test_scaled_init_of_residual_projections():
    cfg = tiny_config(dim=64, n_layers=2, init_std=0.02)
    model = Transformer(cfg)
    std_q = model.layers[0].attn.wq.weight.std().item()
    std_o = model.layers[0].attn.wo.weight.std().item()
    assert abs(std_q - 0.02) < 0.003
    assert abs(std_o - 0.02 / math.sqrt(4)) < 0.002


def test_invalid_configs_name_the_field():
    with pytest.raises(ConfigError, match="n_kv_heads"):
        validate(tiny_config(n_heads=4, n_kv_heads=3), "model")
    with pytest.raises(ConfigError, match="moe.top_k"):
        validate(tiny_config(moe=MoEConfig(n_experts=2, top_k=3)), "model")
    with pytest.raises(ValueError, match="vocab_size"):
        Transformer(tiny_config(vocab_size=0))


def test_lean_loss_without_logits_matches_and_gives_same_gradients(monkeypatch):
    import pretrain.model.transformer as tr

    monkeypatch.setattr(tr, "CE_CHUNK_ELEMENTS", 96 * 5)  # 5-token chunks: several chunks per batch
    cfg = tiny_config(mtp=MTPConfig(depth=1), init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    y = x.roll(-1, 1)
    y[0, 3] = -100
    full = model(x, targets=y)
    full.loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    lean = model(x, targets=y, return_logits=False)
    assert lean.logits is None
    torch.testing.assert_close(lean.ce_sum, full.ce_sum)
    torch.testing.assert_close(lean.mtp_loss, full.mtp_loss)
    lean.loss.backward()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k], rtol=1e-4, atol=1e-6)
