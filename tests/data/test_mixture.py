"""Mixture weights: static, natural, scheduled, annealed; the epochs report and its warning."""

from __future__ import annotations

import pytest

from pretrain.configlib import ConfigError, from_dict, validate
from pretrain.data.loader_config import MixtureConfig, MixturePoint
from pretrain.data.mixture import Mixture

TOKENS = {"code": 1000, "math": 3000, "prose": 6000}


def test_natural_weights_follow_token_counts():
    m = Mixture(MixtureConfig(), TOKENS)
    assert m.weights_at(0.3) == pytest.approx({"code": 0.1, "math": 0.3, "prose": 0.6})


def test_static_weights_are_normalised_and_missing_domains_get_zero():
    m = Mixture(MixtureConfig(weights={"code": 2, "prose": 2}), TOKENS)
    assert m.weights_at(0.0) == pytest.approx({"code": 0.5, "math": 0.0, "prose": 0.5})


def test_schedule_is_piecewise_linear_and_anneal_takes_over():
    cfg = MixtureConfig(schedule=[MixturePoint(0.0, {"code": 1.0}), MixturePoint(0.5, {"prose": 1.0})],
                        anneal_weights={"math": 1.0}, anneal_start=0.9)
    m = Mixture(cfg, TOKENS)
    assert m.weights_at(0.0)["code"] == pytest.approx(1.0)
    assert m.weights_at(0.25) == pytest.approx({"code": 0.5, "math": 0.0, "prose": 0.5})
    assert m.weights_at(0.7)["prose"] == pytest.approx(1.0)
    assert m.weights_at(0.8999)["prose"] == pytest.approx(1.0)
    assert m.weights_at(0.9)["math"] == pytest.approx(1.0)


def test_plan_reports_epochs_and_warns():
    cfg = MixtureConfig(weights={"code": 0.5, "prose": 0.5}, max_epochs_warning=4.0)
    m = Mixture(cfg, TOKENS)
    with pytest.warns(UserWarning, match="'code' would be repeated 10.0 epochs"):
        rows = {r.domain: r for r in m.plan(20_000)}
    assert rows["code"].effective_tokens == pytest.approx(10_000, rel=1e-3)
    assert rows["prose"].epochs == pytest.approx(10_000 / 6000, rel=1e-3)
    assert m.report(20_000)["domains"]["code"]["over_limit"] is True
    assert m.report(2_000)["domains"]["code"]["over_limit"] is False


def test_bad_mixture_configs_name_the_field():
    with pytest.raises(ConfigError, match=r"data.mixture.weights.web"):
        Mixture(MixtureConfig(weights={"web": 1.0}), TOKENS)
    with pytest.raises(ConfigError, match=r"mixture.weights.code': must be >= 0"):
        validate(MixtureConfig(weights={"code": -1.0}), "mixture")
    with pytest.raises(ConfigError, match=r"mixture.schedule"):
        validate(from_dict(MixtureConfig, {"schedule": [{"at": 0.5, "weights": {"a": 1}},
                                                        {"at": 0.1, "weights": {"a": 1}}]}), "mixture")
    with pytest.raises(ConfigError, match="domain has weight but no tokens"):
        Mixture(MixtureConfig(weights={"code": 1.0}), {"code": 0, "prose": 5})
