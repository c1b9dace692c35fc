"""Muon's options beyond the plain optimizer: Polar Express, NorMuon, cautious weight decay, and the
momentum schedule (nanochat's levers), each checked for what it does, not only that it runs."""

from __future__ import annotations

import json

import pytest
import torch
from trainkit import make_trainer, toy_cfg

import pretrain.train.muon as muon_mod
from pretrain.configlib import ConfigError
from pretrain.train.callbacks.muon_momentum import muon_momentum_at
from pretrain.train.muon import Muon, normuon_scale, orthogonalise


def _spread(x: torch.Tensor) -> float:
    s = torch.linalg.svdvals(x)
    return float((s - 1).abs().max())


def test_polar_express_is_closer_to_orthogonal_than_the_quintic():
    torch.manual_seed(0)
    g = torch.randn(64, 128) @ torch.diag(torch.logspace(0, 2, 128))  # condition number ~100
    q, p = orthogonalise(g, 5, "quintic"), orthogonalise(g, 5, "polar_express")
    assert _spread(p) < _spread(q)  # the quintic leaves singular values in ~[0.7, 1.2] by design
    assert _spread(p) < 0.35
    # Tall matrices are handled through their transpose: the same result up to transposition.
    assert torch.allclose(orthogonalise(g.mT, 5, "polar_express"), p.mT, atol=1e-5)
    with pytest.raises(ValueError, match="Newton-Schulz method"):
        Muon([torch.nn.Parameter(torch.zeros(2, 2))], ns="cubic")


def test_normuon_evens_the_rows_and_keeps_the_norm():
    torch.manual_seed(0)
    u = torch.randn(32, 8) * torch.linspace(0.1, 3.0, 32)[:, None]  # rows of very different size
    second = torch.zeros(32, 1)
    out = normuon_scale(u, second, beta2=0.0)  # beta2 0: this step's statistics only
    assert torch.allclose(out.norm(), u.norm(), rtol=1e-5)
    rms = out.square().mean(dim=1).sqrt()
    assert float(rms.max() / rms.min()) < 1.01 < float(u.square().mean(1).sqrt().max() / u.square().mean(1).sqrt().min())
    # The EMA: with beta2 = 0.9 the state moves a tenth of the way to the new mean square.
    s2 = torch.ones(32, 1)
    normuon_scale(u, s2, beta2=0.9)
    assert torch.allclose(s2, 0.9 + 0.1 * u.square().mean(1, keepdim=True))
    # Wide matrices are normalised per column.
    assert normuon_scale(u.mT.contiguous(), torch.zeros(1, 32), 0.0).square().mean(0).std() < 1e-3


def test_cautious_weight_decay_only_where_the_update_agrees():
    w = torch.nn.Parameter(torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
    w.grad = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # update sign +: agrees with column 0, not column 1
    plain, cautious = w.detach().clone(), None
    for flag in (False, True):
        p = torch.nn.Parameter(plain.clone())
        p.grad = w.grad.clone()
        Muon([p], lr=0.1, momentum=0.0, weight_decay=1.0, cautious=flag).step()
        upd = orthogonalise(w.grad, 5)
        decayed = plain - 0.1 * upd  # the update alone
        if flag:
            cautious = p.detach()
            mask = (upd * plain >= 0).float()
            assert torch.allclose(cautious, decayed - 0.1 * plain * mask, atol=1e-6)
        else:
            assert torch.allclose(p.detach(), plain * 0.9 - 0.1 * upd, atol=1e-6)
    assert cautious is not None


def test_momentum_schedule_rises_then_falls_with_the_lr():
    kw = dict(peak=0.97, start=0.85, warmup=400, final=0.90, lr_warmup=50, min_lr_ratio=0.05)
    assert muon_momentum_at(0, 0.02, **kw) == pytest.approx(0.85)
    assert muon_momentum_at(200, 1.0, **kw) == pytest.approx(0.91)
    assert muon_momentum_at(500, 1.0, **kw) == pytest.approx(0.97)
    assert muon_momentum_at(900, 0.525, **kw) == pytest.approx(0.935)  # half-way down the LR decay
    assert muon_momentum_at(999, 0.05, **kw) == pytest.approx(0.90)
    assert muon_momentum_at(10, 0.2, **dict(kw, warmup=0)) == 0.97  # LR warmup is not a decay


def test_muon_variants_train_and_log_the_momentum(tmp_path):
    cfg = toy_cfg('train.optimizer="muon"', "train.max_steps=12", "train.log_interval=1", 'train.schedule="wsd"',
                  "train.warmup_steps=2", "train.decay_fraction=0.5", "train.min_lr_ratio=0.1",
                  'train.muon.ns="polar_express"', "train.muon.beta2=0.9", "train.muon.cautious_wd=true",
                  "train.muon.momentum_warmup=4", "train.muon.momentum_final=0.8")
    res = make_trainer(cfg, tmp_path).fit()
    assert res.history[-1] < res.history[0]
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    mom = [r["muon_momentum"] for r in rows if r.get("type") == "train"]
    assert mom[0] == pytest.approx(0.85) and max(mom) == pytest.approx(0.95) and mom[-1] < 0.85
    with pytest.raises(ConfigError, match=r"train\.muon\.beta2"):
        toy_cfg("train.muon.beta2=1.5")
    with pytest.raises(ConfigError, match=r"train\.muon\.ns"):
        toy_cfg('train.muon.ns="cubic"')


def test_orthogonalise_in_bf16_approximates_the_fp32_iteration(monkeypatch):
    # Where the CPU multiplies bf16 natively (AVX512-BF16, AMX) the iteration runs in bf16, as on CUDA.
    torch.manual_seed(0)
    g = torch.randn(3, 32, 96)
    monkeypatch.setattr(muon_mod, "CPU_NATIVE_BF16", False)
    exact = orthogonalise(g, 5, "polar_express")
    monkeypatch.setattr(muon_mod, "CPU_NATIVE_BF16", True)
    fast = orthogonalise(g, 5, "polar_express")
    assert fast.dtype == g.dtype
    rel = (fast - exact).norm() / exact.norm()
    # bf16 rounding through five iterations (~6% in Frobenius norm here), not another result: the update is
    # an approximate orthogonalisation either way, and GPU Muon runs this iteration in bf16 too.
    assert 0 < rel < 0.1, rel


@pytest.mark.parametrize("compiled", [False, True])
def test_batched_update_equals_the_matrix_by_matrix_update(compiled, monkeypatch):
    # The batching's arithmetic, checked in fp32 on any CPU: where the CPU multiplies bf16 natively the
    # iteration runs in bf16, and inductor keeps fp32 intermediates where eager rounds each op.
    monkeypatch.setattr(muon_mod, "CPU_NATIVE_BF16", False)
    # Square, wide and tall matrices (the tall ones are stacked transposed with the wide ones), with
    # NorMuon and cautious decay on, over steps whose LR and momentum change (a compiled update must
    # follow them, not keep the first values).
    torch.manual_seed(0)
    shapes = [(16, 16), (16, 16), (16, 48), (48, 16), (48, 16), (8, 24)]
    ref = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    new = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    kw = dict(lr=0.05, momentum=0.9, weight_decay=0.5, ns="polar_express", beta2=0.9, cautious=True)
    each, batched = Muon(ref, fused=False, **kw), Muon(new, fused=True, compile=compiled, **kw)
    for step in range(4):
        for a, b in zip(ref, new, strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        for opt in (each, batched):
            opt.param_groups[0]["lr"] = 0.05 / (step + 1)
            opt.param_groups[0]["momentum"] = 0.85 + 0.03 * step
            opt.step()
    for a, b in zip(ref, new, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
        for key in ("momentum_buffer", "second_moment"):
            assert each.state[a][key].shape == batched.state[b][key].shape
            torch.testing.assert_close(batched.state[b][key], each.state[a][key], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(ref[0], new[1])  # the matrices did move, each its own way
