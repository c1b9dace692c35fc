"""Rows that are each one document need no document mask (the trainer then passes no doc_ids)."""

from __future__ import annotations

import torch
from model_helpers import randomise, tiny_config

from pretrain.data.loader import Batch
from pretrain.model import Transformer
from pretrain.model.config import MTPConfig


def _batch(doc_ids: torch.Tensor) -> Batch:
    ids = torch.zeros_like(doc_ids)
    return Batch(ids, ids, doc_ids, ["d"] * len(doc_ids), [[] for _ in doc_ids])


def test_crosses_documents_sees_a_boundary_in_any_row():
    one_each = torch.tensor([[0, 0, 0, 0], [3, 3, 3, 3]])
    assert not _batch(one_each).crosses_documents()
    two = one_each.clone()
    two[1, 2:] = 4  # the second row holds two documents
    assert _batch(two).crosses_documents()


def test_constant_doc_ids_give_exactly_the_unmasked_forward():
    # Every doc_ids consumer (attention mask, smear gate, multi-token targets) must reduce to the causal
    # path when a row is one document; a boundary must change the result (the check can fail).
    cfg = tiny_config(smear_gate=True, x0_mix=True, value_embeddings="-V", qk_norm=True,
                      mtp=MTPConfig(depth=1, weight=0.3))
    model = randomise(Transformer(cfg)).eval()
    torch.manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (3, 24))
    same = torch.arange(3)[:, None].expand(3, 24).contiguous()
    plain, masked = model(x, x, None), model(x, x, same)
    torch.testing.assert_close(masked.logits, plain.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(masked.loss, plain.loss, rtol=0, atol=1e-6)
    split = same.clone()
    split[0, 12:] = 7
    assert not torch.allclose(model(x, x, split).logits[0, 12:], plain.logits[0, 12:], atol=1e-4)
