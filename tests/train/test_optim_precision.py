"""Optimizer groups, Muon, activation checkpointing, the precision map, peak FLOP/s, GNS, ramp, time limit."""

from __future__ import annotations

import json

import pytest
import torch
from trainkit import make_trainer, toy_cfg

from pretrain.train.gns import GradientNoiseScale
from pretrain.train.hardware import cpu_peak, gpu_peak, peak_flops
from pretrain.train.muon import orthogonalise
from pretrain.train.optim import build_optimizer, param_groups


def _model(cfg):
    from pretrain.model import Transformer

    torch.manual_seed(0)
    return Transformer(cfg.model)


def test_no_weight_decay_on_norms_biases_and_embeddings():
    cfg = toy_cfg()
    groups = param_groups(_model(cfg), cfg.train)
    no_decay = {n for n, _ in groups["no_decay"]}
    decay = {n for n, _ in groups["decay"]}
    assert "tok_emb.weight" in no_decay and "norm.weight" in no_decay
    assert all("norm" not in n for n in decay) and any("attn" in n for n in decay)
    assert "lm_head.weight" not in decay | no_decay  # tied to the embedding: listed once
    opt = build_optimizer(_model(cfg), cfg.train)
    wd = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert wd == {"decay": cfg.train.weight_decay, "no_decay": 0.0}


def test_muon_orthogonalises_and_trains(tmp_path):
    g = torch.randn(24, 16)
    o = orthogonalise(g)
    s = torch.linalg.svdvals(o)
    assert 0.5 < float(s.min()) and float(s.max()) < 1.3  # singular values pushed towards 1
    cfg = toy_cfg('train.optimizer="muon"', "train.max_steps=6")
    groups = param_groups(_model(cfg), cfg.train)
    muon = {n for n, _ in groups["muon"]}
    assert muon and all(p.ndim == 2 for _, p in groups["muon"]) and "tok_emb.weight" not in muon
    res = make_trainer(cfg, tmp_path).fit()
    assert res.history[-1] < res.history[0]


def test_activation_checkpointing_gives_the_same_training(tmp_path):
    a = make_trainer(toy_cfg("train.max_steps=3"), tmp_path / "a").fit().history
    b = make_trainer(toy_cfg("train.max_steps=3", "train.activation_checkpointing=true"), tmp_path / "b").fit().history
    assert a == pytest.approx(b, rel=1e-5)


def test_precision_map_runs_named_modules_in_fp32():
    from pretrain.train.precision import apply_precision_map

    cfg = toy_cfg()
    model = _model(cfg)
    hit = apply_precision_map(model, ["norm"], "bf16")
    assert "norm" in hit and "layers.0.attn_norm" in hit
    seen = {}
    model.norm.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.zeros(1, 8, dtype=torch.long))
    assert seen["dtype"] == torch.float32
    assert apply_precision_map(_model(cfg), ["norm"], "fp32") == []  # nothing to do without autocast


def test_peak_flops_is_stated_never_guessed(tmp_path, monkeypatch):
    assert gpu_peak("NVIDIA H100 80GB HBM3", True) == pytest.approx(989.4e12)
    assert gpu_peak("NVIDIA H100 PCIe", True) == pytest.approx(756e12)
    assert gpu_peak("NVIDIA A100-SXM4-40GB", False) == pytest.approx(19.5e12)
    assert gpu_peak("Some Future GPU", True) is None
    assert peak_flops(torch.device("cpu"), False, 5e10) == (5e10, "train.peak_flops (config)")
    monkeypatch.setenv("PRETRAIN_CACHE", str(tmp_path))
    monkeypatch.setattr("pretrain.train.hardware.measure_cpu_peak", lambda seconds=0.5: 1.25e11)
    value, source = cpu_peak()
    assert value == 1.25e11 and "measured" in source
    monkeypatch.setattr("pretrain.train.hardware.measure_cpu_peak", lambda seconds=0.5: 0.5e11)
    assert cpu_peak()[0] == 1.25e11  # a slower re-measurement (a busy machine) keeps the best rate


def test_gradient_noise_scale_recovers_a_known_value():
    # Per-token gradients g_i = G + noise with |G|^2 = 4 and tr(cov) = 64: B_simple = 16.
    torch.manual_seed(0)
    G = torch.zeros(64)
    G[0] = 2.0
    est = GradientNoiseScale(ema=0.99)
    for _ in range(400):
        small = G + torch.randn(4, 64).mean(0)  # B_small = 4 (noise variance 1 per dim)
        big = G + torch.randn(64, 64).mean(0)  # B_big = 64
        est.update(float(small.pow(2).sum()), 4, float(big.pow(2).sum()), 64)
    assert est.value == pytest.approx(16.0, rel=0.25)


def test_gns_batch_ramp_and_metrics_rows(tmp_path):
    cfg = toy_cfg("train.micro_batch=2", "train.grad_accum=2", "train.max_steps=6",
                  "train.batch_ramp=[{tokens = 128, batch = 8}]")
    tr = make_trainer(cfg, tmp_path)
    tr.fit()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert [r["batch"] for r in rows] == [4, 4, 8, 8, 8, 8]  # 4 x 16 tokens per step: the ramp point at 128
    assert rows[2]["lr"] / rows[2]["batch"] ** 0.5 == pytest.approx(
        cfg.train.lr * tr.plan.lr_factor(2) / 4**0.5)  # sqrt rule against the base batch of 4
    assert any("gns_tokens" in r for r in rows)
    assert all(r["mfu"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    assert "loss/even" in rows[0] and "loss/odd" in rows[0]


def budget_events(run_dir):
    """The time budget's plan and re-plan events of a run, in order."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == "time_budget"]


def test_time_limit_sizes_the_schedule_and_stops(tmp_path):
    cfg = toy_cfg("train.max_steps=100000", "train.time_limit_s=4.0", "train.warmup_steps=4")
    tr = make_trainer(cfg, tmp_path)
    res = tr.fit()
    budget = budget_events(tmp_path)
    # A first estimate after the warm-up steps, then re-plans at 25% and 60% of the budget (and one more
    # if steps got much faster than planned, see the test below).
    assert len(budget) >= 3 and all("re-planned" in b["detail"] for b in budget[1:]) and res.step < 100000
    assert budget[0]["step"] <= budget[1]["step"] <= budget[2]["step"]
    assert res.step == budget[-1]["total_steps"] or res.stopped == "time_limit"
    assert tr.train_time < 4.0 + 2.0
    assert tr.plan.total == budget[-1]["total_steps"]


def test_time_budget_replans_when_steps_get_faster(tmp_path):
    """Steps ~3x faster after the first plan: reaching 90% of the planned steps before the 60% time point
    re-plans (a schedule sized for slow steps would end before that point), so the run fills its budget
    instead of ending at about half of it."""
    cfg = toy_cfg("train.max_steps=100000", "train.time_limit_s=4.0", "train.warmup_steps=4",
                  "train.log_interval=1", 'train.callbacks=["cbkit:SlowStart"]',
                  'train.callback_args={"cbkit:SlowStart" = {until = 30, delay_s = 0.02}}')
    tr = make_trainer(cfg, tmp_path)
    res = tr.fit()
    budget = budget_events(tmp_path)
    assert len(budget) >= 3 and budget[0]["total_steps"] < budget[-1]["total_steps"]
    assert tr.step == tr.plan.total or res.stopped == "time_limit"
    assert 0.8 * 4.0 <= tr.train_time <= 4.0 + 1.0, tr.train_time  # before the fix: about half of it


def test_time_budget_ends_within_a_percent_when_steps_slow_down_late(tmp_path):
    """Steps get slower after 65% of the budget: the re-plans at 85% and 95%, from the recent step time,
    bring the last step to the budget (within 3% here, on a shared test machine; the speedrun's 1% is
    measured by benchmarks/peers/nanochat_speedrun.py), and the schedule ends rather than being cut."""
    cfg = toy_cfg("train.max_steps=100000", "train.time_limit_s=4.0", "train.warmup_steps=4",
                  "train.log_interval=1", 'train.callbacks=["cbkit:SlowLate"]',
                  'train.callback_args={"cbkit:SlowLate" = {after = 2.6, delay_s = 0.004}}')
    tr = make_trainer(cfg, tmp_path)
    res = tr.fit()
    budget = budget_events(tmp_path)
    # the first plan and four re-plans; not a re-plan every few steps once 90% of the steps are done
    assert 5 <= len(budget) <= 7, [b["detail"] for b in budget]
    assert 0.97 * 4.0 <= tr.train_time <= 4.0 + 0.2, tr.train_time
    assert tr.step == tr.plan.total or res.stopped == "time_limit"


def test_auto_precision_on_a_cpu_is_bf16_only_where_bf16_is_native(monkeypatch):
    from pretrain.train.precision import native_bf16, resolve_precision

    cpu = torch.device("cpu")
    flags = [getattr(torch.cpu, n, lambda: False)() for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    assert native_bf16(cpu) == any(flags)  # this machine's own answer
    assert resolve_precision("auto", cpu) == ("bf16" if any(flags) else "fp32")
    # An AVX2-only CPU emulates bf16 (~100x slower than fp32): auto stays fp32 there.
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_precision("auto", cpu) == "bf16"


def test_bf16_autocast_path_trains_with_fp32_master_weights(tmp_path):
    # The GPU recipe (bf16 autocast over fp32 weights, norms kept in fp32) exercised on CPU autocast.
    tr = make_trainer(toy_cfg('train.precision="bf16"', "train.max_steps=3"), tmp_path)
    res = tr.fit()
    assert tr.precision == "bf16" and "norm" in tr.fp32_modules
    assert all(p.dtype == torch.float32 for p in tr.raw.parameters())
    assert all(torch.isfinite(torch.tensor(h)) for h in res.history)
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"start"' in x]
    assert "precision=bf16" in events[0]["detail"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_step_uses_fused_adamw_and_no_host_sync_between_logged_steps(tmp_path):
    """A step that is not logged (spike policy off) queues its work without reading anything back."""
    cfg = toy_cfg('train.device="cuda"', 'train.spike.policy="off"', "train.log_interval=4", "train.max_steps=8",
                  "train.gns=false", 'train.stages=[{name="bulk", doc_mask=false}]')
    tr = make_trainer(cfg, tmp_path)
    adam = [o for o in tr.opt.optimizers if isinstance(o, torch.optim.AdamW)]
    assert adam and all(o.defaults.get("fused") for o in adam)
    tr.begin()
    stage = tr.plan.stage_at(0)
    tr.train_step(stage)  # first step: lazy initialisation may sync
    tr.step += 1
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = tr.train_step(stage)  # step 2 of 8, not a logged step
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.is_tensor(metrics["loss"]) and metrics["loss"].is_cuda
