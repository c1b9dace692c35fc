"""Numeric settings out of range stop in one line naming the setting (issue 32): config fields that were
accepted silently, and CLI flags of the data commands (a negative worker count became 1)."""

from __future__ import annotations

import pytest

from pretrain.config import resolve
from pretrain.configlib import ConfigError


@pytest.mark.parametrize(("override", "message"), [
    ("data.curate.sample_chars=-1", "config field 'data.curate.sample_chars': must be >= 0 (got -1)"),
    ("model.n_kv_heads=-1", "config field 'model.n_kv_heads': must be >= 0 (0 = n_heads; got -1)"),
    ("eval.contamination.max_hits=-1", "config field 'eval.contamination.max_hits': must be >= 0 (got -1)"),
])
def test_config_fields_out_of_range_are_refused(override, message):
    with pytest.raises(ConfigError) as err:
        resolve("tiny", [override])
    assert str(err.value) == message


@pytest.mark.parametrize(("args", "message"), [
    (["tokenize", "x", "--workers", "-2"], "--workers must be >= 0 (got -2)"),
    (["tokenize", "x", "--val-fraction", "1"], "--val-fraction must be in [0, 1) (got 1)"),
    (["corpus", "builtin", "--val-fraction", "-0.1"], "--val-fraction must be in [0, 1) (got -0.1)"),
    (["curate-classifier", "good=x.jsonl", "--out", "m.npz", "--epochs", "0"], "--epochs must be >= 1 (got 0)"),
])
def test_data_command_flags_out_of_range_are_one_line(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli(*args)
    assert rc == 2 and err == f"error: {message}\n"
