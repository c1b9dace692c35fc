"""Multi-token prediction: loss wiring, weight schedule, document boundaries, dropping the modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from model_helpers import tiny_config

from pretrain.model import Transformer
from pretrain.model.config import MTPConfig


def _manual_mtp_losses(model: Transformer, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Recompute DeepSeek-V3's sequential MTP by hand: depth k predicts y[i + k] from tokens up to x[i + k]."""
    hidden = model(x).hidden
    T = x.shape[1]
    cos, sin = model.rope(T)
    losses, h = [], hidden
    for k, module in enumerate(model.mtp, start=1):
        h = h[:, : T - k]
        h, _ = module(h, model.tok_emb(x[:, k:]), {"global": (cos[..., : T - k, :], sin[..., : T - k, :])}, None)
        logits = model.lm_head(module.norm(h))
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, k:].reshape(-1)))
    return losses


def test_mtp_loss_matches_manual_recomputation_and_weight():
    cfg = tiny_config(mtp=MTPConfig(depth=2, weight=0.3), init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    y = torch.roll(x, -1, dims=1)
    out = model(x, targets=y)
    manual = _manual_mtp_losses(model, x, y)
    torch.testing.assert_close(out.mtp_loss, 0.3 * torch.stack(manual).mean(), rtol=1e-5, atol=1e-5)
    assert abs(out.metrics["mtp/loss_1"] - float(manual[0].detach())) < 1e-5
    torch.testing.assert_close(out.loss, out.ce_sum / out.n_tokens + out.mtp_loss)
    # The main logits do not depend on the MTP modules.
    plain = Transformer(tiny_config(init_std=0.2))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("mtp.")})
    torch.testing.assert_close(plain(x).logits, out.logits)


def test_mtp_weight_schedule_and_gradients():
    cfg = tiny_config(mtp=MTPConfig(depth=1, weight=0.3, weight_late=0.1, late_fraction=0.7))
    assert cfg.mtp.weight_at(0.5) == 0.3 and cfg.mtp.weight_at(0.8) == 0.1
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 10))
    out = model(x, targets=x)
    out.loss.backward()
    assert model.mtp[0].proj.weight.grad.abs().sum() > 0
    model.set_mtp_weight(0.0)
    out0 = model(x, targets=x)
    assert float(out0.mtp_loss) == 0.0
    torch.testing.assert_close(out0.loss, out0.ce_sum / out0.n_tokens)


def test_mtp_never_predicts_across_documents_or_ignored_targets():
    cfg = tiny_config(mtp=MTPConfig(depth=1), init_std=0.2)
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (1, 10))
    doc = torch.tensor([[0] * 5 + [1] * 5])
    y = torch.roll(x, -1, dims=1)
    y[0, -1] = -100
    with torch.no_grad():
        base = model(x, targets=y, doc_ids=doc).mtp_loss
        # Depth 1 at position i predicts y[i + 1]. y[5] is reached only from position 4, in the other
        # document, so it must not count; y[3] (from position 2, same document) must.
        y2 = y.clone()
        y2[0, 5] = (y2[0, 5] + 1) % cfg.vocab_size
        assert float(model(x, targets=y2, doc_ids=doc).mtp_loss) == float(base)
        assert float(model(x, targets=y2).mtp_loss) != float(model(x, targets=y).mtp_loss)  # no doc_ids: counts
        y3 = y.clone()
        y3[0, 3] = (y3[0, 3] + 1) % cfg.vocab_size
        assert float(model(x, targets=y3, doc_ids=doc).mtp_loss) != float(base)
        # The last position has no depth-1 target at all, and ignored targets stay ignored.
        y4 = y.clone()
        y4[0, 8] = -100
        assert torch.isfinite(model(x, targets=y4, doc_ids=doc).mtp_loss)


def test_drop_mtp_removes_modules():
    cfg = tiny_config(mtp=MTPConfig(depth=2))
    model = Transformer(cfg)
    n = model.num_params()
    model.drop_mtp()
    assert len(model.mtp) == 0 and model.cfg.mtp.depth == 0
    assert cfg.mtp.depth == 2  # the caller's config is left alone
    assert model.num_params() == model.cfg.num_params() == cfg.num_params(include_mtp=False) < n
