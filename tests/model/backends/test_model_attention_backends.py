"""Attention backends as a registry: one class per kernel, a new one selectable by config with no other edit."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain import configlib
from pretrain.model import Transformer
from pretrain.model.backends import base
from pretrain.model.backends.base import AttentionBackend, backend_names, get_backend, register_backend
from pretrain.model.backends.sdpa import dense_mask
from pretrain.model.masking import AttentionPlan


def test_builtin_backends_are_one_class_each():
    assert {"auto", "sdpa", "flex"} <= set(backend_names())
    assert len({type(get_backend(n)).__module__ for n in ("auto", "sdpa", "flex")}) == 3
    plan = AttentionPlan(8, torch.zeros(1, 8, dtype=torch.long), "auto", "cpu")
    assert plan.backend.select(plan, True, 8).name == "sdpa"  # auto on the CPU: flex has no CPU backward
    with pytest.raises(ValueError, match="config field 'model.attention_kernel': 'triton' is not one of"):
        AttentionPlan(8, kernel="triton")


@pytest.fixture
def naive():
    calls = []

    @register_backend("naive_test")
    class Naive(AttentionBackend):
        def prepare(self, plan, k_start, k_len, window, needs_mask):
            pass

        def attend(self, plan, q, k, v, k_start, k_len, window, needs_mask, scale, softcap):
            calls.append((k_start, k_len, window))
            mask = dense_mask(*plan.positions(k_start, k_len), plan.doc_ids, window)
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
            s = (q @ k.transpose(-1, -2)) * (scale or q.shape[-1] ** -0.5)
            if softcap:
                s = softcap * torch.tanh(s / softcap)
            return s.masked_fill(~mask, float("-inf")).softmax(-1) @ v

    yield calls
    base.BACKENDS.remove("naive_test")


def test_a_registered_backend_is_selected_by_config_and_matches_sdpa(naive):
    cfg = tiny_config(n_layers=2, sliding_window=4, window_pattern="SL", init_std=0.2, attention_kernel="naive_test")
    configlib.validate(cfg, "model")  # the config accepts a registered name
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    x = torch.randint(0, 96, (2, 12))
    docs = torch.tensor([[0] * 5 + [1] * 7, [0] * 12])
    with torch.no_grad():
        ours = model(x, doc_ids=docs).logits
        assert sorted({c[2] for c in naive}) == [0, 4]  # both layers ran through it, windowed and full
        model.cfg.attention_kernel = "sdpa"
        ref = model(x, doc_ids=docs).logits
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="registered twice"):
        register_backend("sdpa")(AttentionBackend)
