"""Learning-rate shapes, the stage plan, batch ramp and the LR batch rule."""

from __future__ import annotations

import math

import pytest

from pretrain.train.config import StageConfig, TrainConfig
from pretrain.train.schedule import LRSchedule, batch_at, lr_batch_scale, resume_global_batch
from pretrain.train.stages import Plan, stage_lengths


def curve(s: LRSchedule) -> list[float]:
    return [s(i) for i in range(s.total)]


def test_cosine_warmup_peak_and_floor():
    c = curve(LRSchedule(total=100, warmup=10, shape="cosine", min_ratio=0.1))
    assert c[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert c[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(c[10:], c[11:], strict=False))  # monotone decay after warmup
    assert c[-1] == pytest.approx(0.1, abs=1e-3)
    assert c[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_linear_to_zero():
    c = curve(LRSchedule(total=50, warmup=5, shape="linear"))
    assert c[5] == pytest.approx(1.0)
    assert c[-1] == pytest.approx(1 / 45)  # the update after the last would use exactly 0
    assert all(a > b for a, b in zip(c[5:], c[6:], strict=False))


def test_wsd_stable_then_decay_and_extension_does_not_rewind():
    short = LRSchedule(total=100, warmup=10, shape="wsd", min_ratio=0.0, decay_fraction=0.2)
    c = curve(short)
    assert all(v == 1.0 for v in c[10:82])  # stable phase
    assert c[-1] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(c[82:], c[83:], strict=False))
    # Extending the run (resume with a larger total) leaves every stable-phase step unchanged ...
    longer = LRSchedule(total=200, warmup=10, shape="wsd", min_ratio=0.0, decay_fraction=0.2)
    assert curve(longer)[:82] == c[:82]
    # ... which cosine cannot do.
    cos_a, cos_b = LRSchedule(100, 10, "cosine"), LRSchedule(200, 10, "cosine")
    assert cos_a(50) != pytest.approx(cos_b(50))


def test_anneal_decays_linearly_to_zero_from_main_value():
    s = LRSchedule(total=100, warmup=10, shape="cosine", min_ratio=0.1, anneal_start=80)
    c = curve(s)
    assert c[79] == pytest.approx(0.1, abs=1e-3)  # cosine reaches its floor where the anneal begins
    tail = c[80:]
    assert tail[0] < c[79] and tail[-1] == pytest.approx(c[79] / 21)
    diffs = [a - b for a, b in zip(tail, tail[1:], strict=False)]
    assert max(diffs) - min(diffs) < 1e-12  # linear
    wsd = curve(LRSchedule(total=100, warmup=10, shape="wsd", anneal_start=80))
    assert wsd[79] == 1.0 and wsd[80] == pytest.approx(20 / 21)  # WSD's decay *is* the anneal


def test_stage_plan_fractions_remainder_and_rescaling():
    t = TrainConfig(max_steps=100, seq_len=32, micro_batch=8, stages=[
        StageConfig(name="bulk", fraction=0.0),
        StageConfig(name="long", kind="long_context", steps=20, seq_len=128),
        StageConfig(name="anneal", kind="anneal", fraction=0.1),
    ])
    assert stage_lengths(t, 100) == [70, 20, 10]
    assert stage_lengths(t, 50) == [35, 10, 5]  # a time budget rescales the table
    plan = Plan(t)
    long = plan.stages[1]
    assert (long.start, long.end, long.seq_len, long.micro_batch) == (70, 90, 128, 2)  # tokens per micro kept
    assert plan.stage_at(95).name == "anneal"
    assert plan.lr_schedule.anneal_start == 90


def test_gate_extension_holds_the_lr_and_shifts_later_stages():
    t = TrainConfig(max_steps=100, warmup_steps=5, stages=[
        StageConfig(name="bulk", fraction=0.6), StageConfig(name="long", kind="long_context", fraction=0.2),
        StageConfig(name="anneal", kind="anneal"),
    ])
    plan = Plan(t)
    ext = plan.extend("long", 10)
    assert ext.total == 110 and ext.stage_at(85).name == "long" and ext.stage_at(90).name == "anneal"
    held = [ext.lr_factor(i) for i in range(80, 90)]
    assert all(v == pytest.approx(plan.lr_factor(79)) for v in held)
    assert [ext.lr_factor(i) for i in range(90, 110)] == pytest.approx([plan.lr_factor(i) for i in range(80, 100)])


def test_batch_ramp_and_lr_rule():
    ramp = [(1000, 16), (5000, 32)]
    assert [batch_at(t, 8, ramp) for t in (0, 999, 1000, 4999, 5000, 10**9)] == [8, 8, 16, 16, 32, 32]
    assert lr_batch_scale(32, 8, "sqrt") == pytest.approx(2.0)
    assert lr_batch_scale(32, 8, "linear") == pytest.approx(4.0)
    assert lr_batch_scale(32, 8, "none") == 1.0


def test_config_rejects_bad_stage_tables():
    from pretrain.configlib import ConfigError, validate

    with pytest.raises(ConfigError, match="train.stages"):
        validate(TrainConfig(stages=[StageConfig(name="a", kind="anneal"), StageConfig(name="b")]), "train")
    with pytest.raises(ConfigError, match="at most one stage"):
        validate(TrainConfig(stages=[StageConfig(name="a"), StageConfig(name="b")]), "train")
    with pytest.raises(ConfigError, match=r"batch_ramp\[0\].batch"):
        from pretrain.train.config import BatchRampPoint

        validate(TrainConfig(micro_batch=8, batch_ramp=[BatchRampPoint(100, 12)]), "train")


def test_tokens_per_step_has_one_definition_the_trainer_trains(tmp_path):
    from trainkit import make_trainer, toy_cfg

    from pretrain.scaling.compute import tokens_per_step as budget_tokens_per_step
    from pretrain.train.schedule import tokens_per_step

    cfg = toy_cfg("train.max_steps=2", "train.global_batch=8")  # micro_batch 4: two micro-batches a step
    res = make_trainer(cfg, tmp_path).fit()
    assert res.tokens == 2 * tokens_per_step(cfg.train) == 2 * 8 * 16
    assert budget_tokens_per_step(cfg) == tokens_per_step(cfg.train)  # scaling budgets what training trains
    accum = toy_cfg("train.grad_accum=3")  # no global batch: processes multiply it
    assert tokens_per_step(accum.train, world=2) == budget_tokens_per_step(accum, world=2) == 4 * 3 * 2 * 16


def test_a_resume_on_another_world_size_keeps_the_checkpoints_global_batch():
    from pretrain.configlib import ConfigError

    t = TrainConfig(micro_batch=2, grad_accum=1, seq_len=32)
    assert resume_global_batch(t, {"world_size": 2, "global_batch": 4}, 2) == "" and t.global_batch == 0
    text = resume_global_batch(t, {"world_size": 2, "global_batch": 4}, 1)  # a node was lost
    assert t.global_batch == 4 and text == ("world size 2 -> 1: global batch kept at 4 sequences "
                                            "(1 -> 2 micro-batches per rank a step)")
    again = TrainConfig(micro_batch=2, seq_len=32)  # relaunched on 1 process: its checkpoint says 4
    assert resume_global_batch(again, {"world_size": 1, "global_batch": 4}, 1) == "" and again.global_batch == 4
    old = TrainConfig(micro_batch=2, seq_len=32)  # a checkpoint from before meta.json held global_batch
    assert "global batch kept at 8" in resume_global_batch(old, {"world_size": 4}, 2) and old.global_batch == 8
    mine = TrainConfig(micro_batch=2, seq_len=32, global_batch=8)  # set by the user: it stays
    assert "global batch 8 sequences (train.global_batch; the checkpoint's was 4) (1 -> 4 micro" in \
        resume_global_batch(mine, {"world_size": 2, "global_batch": 4}, 1)
    with pytest.raises(ConfigError, match=r"train\.global_batch.*global batch of 2 sequences"):
        resume_global_batch(TrainConfig(micro_batch=2, seq_len=32), {"world_size": 1, "global_batch": 2}, 2)

