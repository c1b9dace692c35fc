"""The loop's contract: the TrainState in checkpoints, the typed step result, the callback context (its
metrics sink, save and eval requests, the once-only pointer for old Trainer names) and state keys that
do not depend on the module a callback lives in."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from trainkit import ListLoader, make_trainer, toy_cfg

from pretrain.train import Callback
from pretrain.train import checkpoint as ckpt


def _rows(run, kind):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def held_out_loss(model, seq_len):
    """A real held-out evaluation: mean target loss of the model on rows the training stream has not reached."""
    loader = ListLoader(8, seq_len, 8, seed=123)
    b = loader.next_batch()
    with torch.no_grad():
        out = model(b.input_ids, b.targets, None)
    return {"val_loss": float(out.ce_sum / out.n_tokens)}


def test_the_checkpoint_holds_the_train_state_whole(tmp_path):
    from pretrain.train.state import TrainState

    tr = make_trainer(toy_cfg("train.max_steps=4", "train.checkpoint_interval=2"), tmp_path)
    tr.fit()
    saved = ckpt.load_trainer_state(tmp_path / "checkpoints" / "step_00000002" / "trainer_state.pt")
    state = TrainState.from_checkpoint(saved, max_steps=4)
    assert (state.step, state.tokens, state.stage, state.max_steps) == (2, 2 * 4 * 16, "bulk", 4)
    assert state.loader == {"pos": 8} and set(state.rng) >= {"torch", "numpy", "python"}
    assert tr.state.step == 4 and tr.step == 4  # the Trainer's counters are the state's


def test_a_step_returns_a_typed_result_matching_its_metrics(tmp_path):
    tr = make_trainer(toy_cfg("train.max_steps=4", "train.grad_accum=2"), tmp_path)
    tr.begin()
    stage = tr.plan.stage_at(0)
    result = tr.stepper.run(tr.step_inputs(stage, 1))
    assert (result.step, result.tokens, result.skipped) == (1, 2 * 4 * 16, False)
    assert result.metrics["tokens_in_step"] == result.tokens and result.metrics["micro_steps"] == 2
    assert torch.is_tensor(result.loss) and result.loss is result.metrics["loss"]  # no host sync in the step
    assert 0 < result.targets <= result.tokens and float(result.grad_norm) > 0
    assert len(tr.stepper.batches) == 2


class OldStyle(Callback):
    """Written against the Trainer's attributes, as docs/training.md described them before the context."""

    def __init__(self):
        self.seen: list[tuple[int, int]] = []

    def on_step_end(self, trainer, step, metrics):
        n = sum(p.numel() for p in trainer.raw.parameters())
        self.seen.append((trainer.step, n))


def test_a_callback_using_old_trainer_names_still_works_and_is_told_once(tmp_path):
    cb = OldStyle()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(toy_cfg("train.max_steps=3"), tmp_path, callbacks=[cb]).fit()
    assert [s for s, _ in cb.seen] == [1, 2, 3] and cb.seen[0][1] > 0
    told = sorted(str(w.message) for w in caught if issubclass(w.category, FutureWarning))
    assert told == ["callback used trainer.raw: use model on the loop context instead",
                    "callback used trainer.step: use state.step on the loop context instead"]
    events = [r["detail"] for r in _rows(tmp_path, "event") if r["event"] == "interface"]
    assert sorted(events) == told


def test_metrics_added_on_unlogged_steps_reach_the_next_logged_row(tmp_path):
    class Every(Callback):
        def on_step_end(self, ctx, step, metrics):
            if step % 3 == 1:  # never a logged step at log_interval 3
                ctx.metrics.add("probe/from_step", step)
                ctx.metrics.add("probe/tensor", torch.tensor(step * 2.0))

    make_trainer(toy_cfg("train.max_steps=6", "train.log_interval=3"), tmp_path, callbacks=[Every()]).fit()
    train = _rows(tmp_path, "train")
    assert [(r["step"], r["probe/from_step"], r["probe/tensor"]) for r in train] == [(3, 1, 2.0), (6, 4, 8.0)]


def test_save_and_eval_requests_run_after_the_step_once(tmp_path):
    class Ask(Callback):
        def on_step_end(self, ctx, step, metrics):
            if step in (3, 4):
                ctx.request_save()
                ctx.request_eval()
            if step == 4:
                ctx.control.request_save(milestone=True)  # and the interval checkpoint is at step 4 too

    cfg = toy_cfg("train.max_steps=6", "train.checkpoint_interval=4", "train.keep_last=5")
    make_trainer(cfg, tmp_path, callbacks=[Ask()], evaluator=held_out_loss).fit()
    names = sorted(p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints"))
    assert names == ["step_00000003", "step_00000004", "step_00000006"]
    saved = [r["detail"] for r in _rows(tmp_path, "event") if r["event"] == "checkpoint"]
    assert saved.count("step_00000004") == 1  # requested where the cadence saved anyway: written once
    evals = [r["step"] for r in _rows(tmp_path, "eval") if "model" not in r]
    assert evals[:2] == [3, 4] and all(r > 0 for r in (e["val_loss"] for e in _rows(tmp_path, "eval")))


def test_callback_states_are_keyed_by_class_name_and_old_module_keys_still_load():
    from pretrain.train.callbacks import CallbackList, Control

    class Counter(Callback):
        def __init__(self):
            self.n = 0

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, state):
            self.n = state["n"]

    class Named(Counter):
        state_key = "my/counter"

    a, b, c = Counter(), Counter(), Named()
    cbs = CallbackList([a, b, c], Control())
    assert cbs.keys == ["Counter", "Counter#2", "my/counter"]
    old = f"{__name__}:test_callback_states_are_keyed_by_class_name_and_old_module_keys_still_load.<locals>.Counter"
    cbs.load_state_dict({old: {"n": 5}, f"{old}#2": {"n": 6}, "my/counter": {"n": 7}})
    assert (a.n, b.n, c.n) == (5, 6, 7)


def test_the_context_refuses_names_the_trainer_does_not_have_either(tmp_path):
    tr = make_trainer(toy_cfg("train.max_steps=1"), tmp_path)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = tr.ctx.nonsense


def test_the_callback_example_in_the_docs_runs_against_the_loop_context(tmp_path):
    """docs/training.md's UpdateRatio, executed as written: its key reaches the logged rows, no old name used."""
    import re
    import types
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "# mypkg/watch.py" in b]
    module = types.ModuleType("watch")
    exec(compile(code, "docs/training.md", "exec"), module.__dict__)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # an old Trainer name would be reported, and fail here
        make_trainer(toy_cfg("train.max_steps=3"), tmp_path, callbacks=[module.UpdateRatio()]).fit()
    ratios = [r["watch/update_ratio"] for r in _rows(tmp_path, "train")]
    assert len(ratios) == 3 and all(0 < r < 1 for r in ratios)
