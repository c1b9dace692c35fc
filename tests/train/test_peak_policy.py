"""The CPU peak used for MFU: the maximum over real measurements, never the first number cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pretrain.train import hardware
from pretrain.train.hardware import PeakEntry, cpu_peak, measure_cpu_peak, merge_peak


def test_merge_keeps_the_maximum_and_remembers_a_quiet_measurement():
    e = merge_peak(None, 48e9, load=8.0, cores=2)
    assert e == PeakEntry(48e9, 8.0, False, 1)
    e = merge_peak(e, 91e9, load=7.0, cores=2)
    assert (e.flops, e.quiet, e.count) == (91e9, False, 2)
    e = merge_peak(e, 60e9, load=0.3, cores=2)  # quiet but slower (e.g. a frequency dip): max stays
    assert (e.flops, e.load, e.quiet, e.count) == (91e9, 7.0, True, 3)
    assert merge_peak(e, 140e9, load=6.0, cores=2).quiet  # quiet, once seen, stays


def test_cpu_peak_rises_past_a_loaded_first_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAIN_CACHE", str(tmp_path))
    # The first cache format held a bare number measured under load: it must not stick.
    (tmp_path / "peak_flops.json").write_text(json.dumps({hardware.cpu_key(): 48e9}))
    legacy = (tmp_path / "peak_flops.json").read_text()
    calls = []
    rates = iter([91e9, 140e9, 100e9])
    loads = iter([8.0, 0.4, 0.2])

    def fake_measure(seconds=0.5):
        calls.append(seconds)
        return next(rates)

    monkeypatch.setattr(hardware, "measure_cpu_peak", fake_measure)
    monkeypatch.setattr(hardware, "load_average", lambda: next(loads))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    value, source = cpu_peak()  # 91 > the legacy 48: the loaded first number does not stick
    assert value == 91e9 and "may be overstated" in source and calls == [0.25]
    value, source = cpu_peak()  # a quiet machine: a long measurement, and the real peak replaces the loaded one
    assert value == 140e9 and "overstated" not in source and "best of 3 runs" in source
    value, _ = cpu_peak()  # a slower later measurement keeps the best, and is short once a quiet one exists
    assert value == 140e9 and calls == [0.25, 1.0, 0.25]
    stored = json.loads((tmp_path / "cpu_peaks.json").read_text())[hardware.cpu_key()]
    assert stored == {"flops": 140e9, "load": 0.4, "quiet": True, "count": 4}
    assert (tmp_path / "peak_flops.json").read_text() == legacy  # older code still reads its own file


@pytest.mark.parametrize("variable, value", [("TORCHELASTIC_RESTART_COUNT", "1"), ("LOCAL_RANK", "1")])
def test_a_restart_attempt_or_another_local_rank_uses_the_cached_peak(tmp_path, monkeypatch, variable, value):
    """A torchrun restart after a fault starts without 0.3 s or more of matmuls; so do local ranks > 0."""
    monkeypatch.setenv("PRETRAIN_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(hardware, "measure_cpu_peak", lambda seconds=0.5: calls.append(seconds) or 9e10)
    assert cpu_peak()[0] == 9e10 and calls == [0.5]  # the first attempt (local rank 0) measures
    monkeypatch.setenv(variable, value)
    value, source = cpu_peak()
    assert value == 9e10 and calls == [0.5] and "not measured again" in source
    (tmp_path / "cpu_peaks.json").unlink()
    assert cpu_peak()[0] == 9e10 and calls == [0.5, 0.5]  # nothing cached: it measures after all


def test_corrupt_cache_is_remeasured(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAIN_CACHE", str(tmp_path))
    (tmp_path / "cpu_peaks.json").write_text("{not json")
    monkeypatch.setattr(hardware, "measure_cpu_peak", lambda seconds=0.5: 1e11)
    assert cpu_peak()[0] == 1e11


def test_real_matmul_measurement_is_positive():
    assert measure_cpu_peak(n=64, seconds=0.01) > 1e6


@pytest.mark.parametrize("torch_first", [False, True])
def test_wait_policy_is_set_before_torch_loads(torch_first):
    # pretrain first: the variable is set before anything could load torch (importing torch after it would
    # only cost time here); torch first: the flag says libgomp may not have seen the policy.
    code = ("import torch, pretrain" if torch_first else "import pretrain") + \
        "; import os; print(os.environ['OMP_WAIT_POLICY'], pretrain.WAIT_POLICY_BEFORE_TORCH)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", str(not torch_first)]
