"""Atomic checkpoints, validity checks, retention, averaging and the trainer-state format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pretrain.train import checkpoint as ckpt
from pretrain.train.safestate import from_safe as _from_safe
from pretrain.train.safestate import to_safe as _to_safe


def _write(root, name, tensors, step, milestone=False, fail_after_model=False):
    def files(tmp):
        save_file(tensors, str(tmp / "model.safetensors"))
        if fail_after_model:
            raise OSError("disk full (simulated crash mid-save)")
        torch.save({"step": step}, tmp / "trainer_state.pt")

    return ckpt.write_checkpoint(root, name, files, {"step": step, "milestone": milestone})


def test_crash_mid_save_leaves_no_valid_checkpoint(tmp_path):
    good = _write(tmp_path, "step_00000002", {"w": torch.ones(3)}, 2)
    with pytest.raises(OSError, match="simulated"):
        _write(tmp_path, "step_00000004", {"w": torch.zeros(3)}, 4, fail_after_model=True)
    assert not (tmp_path / "step_00000004").exists()
    assert (tmp_path / ".tmp-step_00000004").exists()  # debris is hidden, and never taken for a checkpoint
    assert ckpt.latest_checkpoint(tmp_path) == good
    assert ckpt.clean_temporaries(tmp_path) == [tmp_path / ".tmp-step_00000004"]


def test_truncated_or_unfinished_checkpoint_is_invalid(tmp_path):
    a = _write(tmp_path, "step_00000001", {"w": torch.ones(3)}, 1)
    b = _write(tmp_path, "step_00000002", {"w": torch.ones(3)}, 2)
    assert ckpt.latest_checkpoint(tmp_path) == b
    with open(b / "model.safetensors", "r+b") as fh:  # torn write
        fh.truncate(10)
    assert not ckpt.is_valid(b) and ckpt.latest_checkpoint(tmp_path) == a
    (a / "meta.json").unlink()  # meta.json is written last: without it nothing counts
    assert ckpt.latest_checkpoint(tmp_path) is None


def test_keep_last_spares_milestones(tmp_path):
    for s in range(1, 7):
        _write(tmp_path, f"step_{s:08d}", {"w": torch.full((2,), float(s))}, s, milestone=(s == 2))
    ckpt.prune(tmp_path, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_00000002", "step_00000005", "step_00000006"]


def test_checkpoint_average_is_the_mean_of_the_weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    sds = [{"a": torch.randn(4, 3, generator=g), "b": torch.randn(5, generator=g)} for _ in range(3)]
    paths = [_write(tmp_path, f"step_{i:08d}", sd, i) for i, sd in enumerate(sds, start=1)]
    avg = ckpt.average_state_dicts(paths)
    for k in ("a", "b"):
        torch.testing.assert_close(avg[k], torch.stack([sd[k] for sd in sds]).mean(0), rtol=0, atol=1e-7)
    save_file({"a": torch.zeros(4, 3)}, str(paths[0] / "model.safetensors"))
    with pytest.raises(ValueError, match="tensors differ"):
        ckpt.average_state_dicts(paths)


def test_trainer_state_round_trips_through_weights_only(tmp_path):
    state = {"loader": _to_safe({"perm": np.arange(5, dtype=np.int64), "pos": np.int64(3), "t": (1, "x")}),
             "rng": _to_safe(np.random.get_state())}
    ckpt.save_trainer_state(state, tmp_path / "s.pt")
    back = _from_safe(ckpt.load_trainer_state(tmp_path / "s.pt"))
    assert np.array_equal(back["loader"]["perm"], np.arange(5)) and back["loader"]["pos"] == 3
    assert back["loader"]["t"] == (1, "x")
    np.random.set_state(back["rng"])  # a valid numpy RNG state


def test_trainer_checkpoint_contents(tmp_path):
    from trainkit import make_trainer, toy_cfg

    tr = make_trainer(toy_cfg("train.max_steps=6", "train.checkpoint_interval=2", "train.keep_last=1"), tmp_path)
    tr.fit()
    cps = ckpt.list_checkpoints(tmp_path / "checkpoints")
    # keep_last=1 pruned step 2; step 6 ends the (only) stage, which makes it a milestone.
    assert [p.name for p in cps] == ["step_00000004", "step_00000006"]
    final = tmp_path / "checkpoints" / "final"
    assert ckpt.is_valid(final)
    names = {p.name for p in final.iterdir()}
    assert {"model.safetensors", "model_config.json", "config.toml", "trainer_state.pt", "meta.json"} <= names
    meta = json.loads((final / "meta.json").read_text())
    assert meta["step"] == 6 and meta["tokens"] == 6 * 4 * 16 and "mixture" in meta
    state = ckpt.load_trainer_state(final / "trainer_state.pt")  # weights_only=True
    assert {"loader", "rng", "callbacks", "step", "tokens"} <= set(state)
    spike = state["callbacks"]["SpikeGuard"]
    assert len(spike["detector"]["loss"]) == 6  # every callback's state is in the checkpoint
    assert (cps[-1] / "dcp" / ".metadata").is_file()  # model + optimizer in DCP format
    from pretrain.model.io import load_model

    model = load_model(final)
    torch.testing.assert_close(model.state_dict()["tok_emb.weight"], tr.raw.state_dict()["tok_emb.weight"])


def test_resuming_a_different_model_shape_is_refused(tmp_path):
    from trainkit import make_trainer, toy_cfg

    make_trainer(toy_cfg("train.max_steps=2"), tmp_path).fit()
    with pytest.raises(ValueError, match="model.dim=32 but the config says 64"):
        make_trainer(toy_cfg("train.max_steps=4", "model.dim=64"), tmp_path).fit()
    make_trainer(toy_cfg("train.max_steps=4", "model.dim=64"), tmp_path, fresh=True).fit()  # --fresh starts over


def test_averaging_a_damaged_checkpoint_names_the_file(tmp_path):
    from pretrain.train.checkpoint import average_state_dicts

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    save_file({"w": torch.ones(2)}, str(tmp_path / "a" / "model.safetensors"))
    (tmp_path / "b" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(ValueError, match=r"b/model\.safetensors: not a readable safetensors file") as err:
        average_state_dicts([tmp_path / "a", tmp_path / "b"])
    assert "\n" not in str(err.value)
