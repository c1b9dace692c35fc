"""Gradient accumulation equals one big batch: the loss is normalised by the step's target tokens."""

from __future__ import annotations

import torch
from trainkit import ListLoader, make_trainer, toy_cfg


def _final_weights(tmp_path, name, micro, accum):
    cfg = toy_cfg(f"train.micro_batch={micro}", f"train.grad_accum={accum}", "train.max_steps=4",
                  "train.grad_clip=0.0")
    tr = make_trainer(cfg, tmp_path / name)
    res = tr.fit()
    return res.history, {k: v.clone() for k, v in tr.raw.state_dict().items()}


def test_accumulation_matches_one_big_batch(tmp_path):
    h1, w1 = _final_weights(tmp_path, "big", 8, 1)
    h2, w2 = _final_weights(tmp_path, "acc2", 4, 2)
    h4, w4 = _final_weights(tmp_path, "acc4", 2, 4)
    assert h1 == __import__("pytest").approx(h2, rel=1e-5) and h1 == __import__("pytest").approx(h4, rel=1e-5)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(w4[k], w1[k], rtol=1e-4, atol=1e-5)


def test_micro_batches_have_unequal_token_counts_so_the_normalisation_matters():
    # Guard for the test above: with equal counts per micro-batch, averaging per-micro-batch means would
    # also be exact and the test could not tell the two normalisations apart.
    loader = ListLoader(64, 16, 1)
    counts = {int((loader.next_batch().targets != -100).sum()) for _ in range(8)}
    assert len(counts) > 1


def test_mean_of_micro_means_would_differ(tmp_path):
    """The per-micro-batch-mean gradient differs from the token-normalised one on these batches."""
    from pretrain.model import Transformer

    cfg = toy_cfg()
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    loader = ListLoader(64, 16, 2)
    batches = [loader.next_batch() for _ in range(2)]
    total = sum(int((b.targets != -100).sum()) for b in batches)

    def grad(normalise_by_tokens: bool):
        model.zero_grad()
        for b in batches:
            out = model(b.input_ids, b.targets)
            (out.ce_sum / total if normalise_by_tokens else out.loss / len(batches)).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()

    full = model.zero_grad() or None
    both = torch.cat([b.input_ids for b in batches]), torch.cat([b.targets for b in batches])
    out = model(*both)
    out.loss.backward()
    full = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()
    torch.testing.assert_close(grad(True), full, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(grad(False), full, rtol=1e-4, atol=1e-6)
