"""Config loading, presets, overrides, validation and round trips."""

from __future__ import annotations

import pytest

from pretrain import configlib
from pretrain.config import RunConfig, load_saved, resolve, save
from pretrain.configlib import ConfigError
from pretrain.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves_and_validates(name):
    cfg = resolve(name)
    assert isinstance(cfg, RunConfig)
    assert cfg.preset == name
    assert cfg.model.dim % cfg.model.n_heads == 0


def test_required_presets_exist():
    assert {"tiny", "quickstart", "small", "gpt2-124m", "llama-1b"} <= set(PRESETS)


def test_llama_1b_shape_is_the_published_one():
    m = resolve("llama-1b").model
    assert (m.dim, m.n_layers, m.n_heads, m.kv_heads, m.hidden_dim) == (2048, 16, 32, 8, 8192)


def test_dotted_overrides_parse_types():
    cfg = resolve("tiny", ["train.lr=3e-4", "model.qk_norm=true", "data.inputs=['a','b']", "name=exp1",
                           "model.rope_scaling.type=yarn", "model.rope_scaling.factor=4"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.qk_norm is True
    assert cfg.data.inputs == ["a", "b"]
    assert cfg.name == "exp1"
    assert cfg.model.rope_scaling.type == "yarn"
    assert cfg.model.rope_scaling.factor == 4.0  # an int given for a float field is accepted


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ("train.lr=-1", "train.lr", "must be > 0"),
        ("train.lrr=1", "train.lrr", "did you mean 'lr'"),
        ("model.rope_scaling.type=foo", "model.rope_scaling.type", "must be one of"),
        ("train.seq_len=abc", "train.seq_len", "expected an integer"),
        ("model.qk_norm=1", "model.qk_norm", "expected true or false"),
        ("model.n_heads=3", "model.n_heads", "must divide dim"),
        ("model.n_kv_heads=3", "model.n_kv_heads", "must divide n_heads"),
        ("data.val_fraction=1.5", "data.val_fraction", "must be in [0, 1)"),
        ("train.seq_len=4096", "train.seq_len", "exceeds model.max_seq_len"),
        ("nosuch.section=1", "nosuch", "unknown field"),
    ],
)
def test_bad_values_name_the_field(override, field, words):
    with pytest.raises(ConfigError) as err:
        resolve("tiny", [override])
    msg = str(err.value)
    assert f"'{field}'" in msg and words in msg
    assert "\n" not in msg


def test_file_with_preset_and_overrides_layering(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text('preset = "tiny"\nname = "exp"\n[train]\nlr = 0.01\nmax_steps = 7\n')
    cfg = resolve(f, ["train.max_steps=9"])
    assert cfg.name == "exp"
    assert cfg.train.lr == 0.01  # file beats preset
    assert cfg.train.max_steps == 9  # override beats file
    assert cfg.model.dim == PRESETS["tiny"]["model"]["dim"]  # preset beats defaults


def test_yaml_config(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("preset: tiny\ntrain:\n  lr: 0.02\n")
    assert resolve(f).train.lr == 0.02


def test_unparseable_file_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train\nlr = ")
    with pytest.raises(ConfigError, match="bad.toml"):
        resolve(f)


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="tiny"):
        resolve("no-such-preset")


def test_saved_config_round_trips_exactly(tmp_path):
    cfg = resolve("quickstart", ["model.moe.n_experts=4", "data.mixture.weights={code=0.5, docs=0.5}"])
    save(cfg, tmp_path / "config.toml")
    again = load_saved(tmp_path / "config.toml")
    assert configlib.to_dict(again) == configlib.to_dict(cfg)


def test_every_field_is_documented():
    missing = [name for name, _tp, _d, doc in configlib.describe(RunConfig) if not doc]
    assert missing == []
