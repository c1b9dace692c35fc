"""MoE: sparse dispatch equals a dense loop; balancing losses; auxiliary-loss-free bias balancing."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain.model import Transformer
from pretrain.model.config import MoEConfig
from pretrain.model.moe import MoE, max_violation


def _moe(**moe_kw) -> MoE:
    cfg = tiny_config(moe=MoEConfig(**{"n_experts": 6, "top_k": 2, **moe_kw}), init_std=0.2)
    return MoE(cfg)


@pytest.mark.parametrize("score", ["sigmoid", "softmax"])
@pytest.mark.parametrize("n_shared", [0, 1])
def test_sparse_dispatch_matches_dense_reference_and_token_loop(score, n_shared):
    moe = _moe(router_score=score, n_shared=n_shared)
    moe.router_bias.uniform_(-0.2, 0.2)  # biases change which experts are chosen, not the gates
    x = torch.randn(2, 7, 32)
    y, _ = moe(x)
    torch.testing.assert_close(y, moe.dense_forward(x), rtol=1e-5, atol=1e-6)
    # An explicit per-token loop over the chosen experts.
    flat = x.view(-1, 32)
    logits = flat @ moe.router.weight.T
    scores = logits.sigmoid() if score == "sigmoid" else logits.softmax(-1)
    expected = []
    for t in range(flat.shape[0]):
        chosen = (scores[t] + moe.router_bias).topk(2).indices
        g = scores[t, chosen] / scores[t, chosen].sum()
        out = sum(g[j] * moe.experts[int(e)](flat[t]) for j, e in enumerate(chosen))
        if moe.shared is not None:
            out = out + moe.shared(flat[t])
        expected.append(out)
    torch.testing.assert_close(y.view(-1, 32), torch.stack(expected), rtol=1e-5, atol=1e-6)


def test_gradients_reach_router_and_chosen_experts():
    moe = _moe(balance="aux_loss", aux_loss_coef=0.01)
    y, aux = moe(torch.randn(2, 5, 32))
    (y.sum() + aux).backward()
    assert moe.router.weight.grad.abs().sum() > 0
    assert sum(int(e.gate.weight.grad is not None) for e in moe.experts) >= 2


def test_switch_aux_loss_value():
    moe = _moe(balance="aux_loss", aux_loss_coef=0.5, router_score="softmax")
    x = torch.randn(1, 9, 32)
    _, aux = moe(x)
    logits, scores, idx, _ = moe.route(x.view(-1, 32))
    f = torch.bincount(idx.flatten(), minlength=6).float() * 6 / (2 * 9)
    torch.testing.assert_close(aux, 0.5 * (f * scores.mean(0)).sum())
    # A uniform router is perfectly balanced in expectation: the loss is coef * 1.
    moe.router.weight.data.zero_()
    _, aux = moe(x)
    assert float(aux.detach()) == pytest.approx(0.5, rel=1e-5)


def test_sequence_wise_and_z_losses():
    moe = _moe(balance="none", seq_aux_alpha=1.0, z_loss_coef=0.0)
    x = torch.randn(3, 4, 32)
    _, seq = moe(x)
    logits, scores, idx, _ = moe.route(x.view(-1, 32))
    probs = (scores / scores.sum(-1, keepdim=True)).view(3, 4, 6)
    expected = 0.0
    for b in range(3):
        f = torch.bincount(idx.view(3, 8)[b], minlength=6).float() * 6 / (2 * 4)
        expected += (f * probs[b].mean(0)).sum() / 3
    torch.testing.assert_close(seq, expected)
    moe_z = _moe(balance="none", z_loss_coef=1.0)
    moe_z.load_state_dict(moe.state_dict())
    _, z = moe_z(x)
    torch.testing.assert_close(z, torch.logsumexp(logits, -1).square().mean())


def test_aux_free_bias_moves_toward_balance_on_a_skewed_router():
    torch.manual_seed(1)
    moe = _moe(balance="aux_free", bias_update_speed=0.01, top_k=1)
    direction = torch.randn(32)
    moe.router.weight.data[0] += 0.3 * direction  # expert 0 wins most tokens
    x = torch.randn(4, 32, 32) * 0.5 + direction
    moe.train()
    moe(x)
    start = max_violation(moe.last_counts)
    for _ in range(150):
        moe(x)
        moe.update_router_biases()
    end = max_violation(moe.last_counts)
    assert start > 2.0
    assert end < start / 3
    assert moe.router_bias[0] < 0 and moe.load.sum() == 0


def test_bias_update_is_noop_for_other_balancing_and_dense_models():
    moe = _moe(balance="aux_loss")
    moe.train()
    moe(torch.randn(1, 8, 32))
    moe.update_router_biases()
    assert moe.router_bias.abs().sum() == 0
    dense = Transformer(tiny_config())
    dense.update_router_biases()  # no MoE layers: nothing happens
    assert dense.moe_layers() == []


def test_model_level_moe_metrics_and_aux():
    cfg = tiny_config(moe=MoEConfig(n_experts=4, top_k=2, balance="aux_loss", first_dense_layers=1))
    model = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (2, 8))
    out = model(x, targets=x)
    assert len(model.moe_layers()) == 1
    assert out.metrics["moe/max_violation"] >= 0
    assert float(out.aux_loss.detach()) > 0
    torch.testing.assert_close(out.loss, out.ce_sum / out.n_tokens + out.aux_loss)
    loads = model.expert_loads()
    assert len(loads) == 1 and int(loads[0].sum()) == 2 * 8 * 2
    model.eval()
    model(x)
    assert model.moe_layers()[0].load.sum() == 2 * 8 * 2  # eval forwards do not count toward the bias update
