"""Ablations: value parsing, the variant grid, the seed-noise comparison, and a real two-variant run."""

from __future__ import annotations

import json

import pytest
from scaling_helpers import tiny_overrides

from pretrain.configlib import ConfigError
from pretrain.scaling.ablate import AblateConfig, compare, parse_vary, run_ablation, split_values, variants


def test_split_values_respects_brackets_and_quotes():
    assert split_values('0,0.5,[1,2],"a,b"') == ["0", "0.5", "[1,2]", '"a,b"']
    assert parse_vary("model.moe.balance=aux_loss,aux_free,none") == (
        "model.moe.balance", ["aux_loss", "aux_free", "none"])
    for bad in ("model.dim", "model.dim=", "=1,2", "model.dim=1,,2"):
        with pytest.raises(ValueError, match="vary"):
            parse_vary(bad)


def test_variants_are_the_cartesian_product_baseline_first():
    ac = AblateConfig(vary=["model.mtp.depth=0,1", "data.loader.fim.rate=0,0.5,0.9"])
    vs = variants(ac)
    assert len(vs) == 6
    assert vs[0] == ["model.mtp.depth=0", "data.loader.fim.rate=0"]
    assert len({tuple(v) for v in vs}) == 6


def _rows(values, domain_shift=0.0):
    return [{"val_loss": v, "val_loss/code": v + domain_shift} for v in values]


def test_compare_flags_only_differences_beyond_seed_noise():
    results = {
        "base": _rows([3.00, 3.01, 2.99]),
        "better": _rows([2.80, 2.81, 2.79]),  # 0.2 lower, noise 0.01
        "same": _rows([3.005, 2.995, 3.012]),  # within noise
    }
    table = {(r.variant, r.domain): r for r in compare(results)}
    assert table[("better", "overall")].exceeds_noise is True
    assert table[("better", "overall")].delta == pytest.approx(-0.2)
    assert table[("better", "overall")].p_value < 0.01
    assert table[("same", "overall")].exceeds_noise is False
    assert table[("base", "overall")].exceeds_noise is None  # the baseline is not compared with itself
    assert table[("better", "code")].std == pytest.approx(0.01)
    # One seed: no noise estimate, no verdict.
    single = {r.variant: r for r in compare({"a": _rows([3.0]), "b": _rows([2.0])}) if r.domain == "overall"}
    assert single["b"].exceeds_noise is None and single["b"].delta == pytest.approx(-1.0)


def test_bad_ablation_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="seeds"):
        run_ablation(AblateConfig(vary=["model.mtp.depth=0,1"], seeds=0), tmp_path)
    with pytest.raises(ConfigError, match="model.nosuch"):
        run_ablation(AblateConfig(vary=["model.nosuch=0,1"], seeds=1), tmp_path)


@pytest.mark.slow
def test_ablation_end_to_end_with_seeds_and_resume(tiny_data, tmp_path):
    from pretrain.train import train

    calls = []

    def counting_train(cfg, run_dir, fresh=False, progress=False):
        calls.append(cfg.train.seed)
        return train(cfg, run_dir, fresh=fresh, progress=progress)

    ac = AblateConfig(base="tiny", overrides=[*tiny_overrides(tiny_data), "model.dim=32", "model.n_layers=1",
                                              "model.n_heads=4", "train.max_steps=8", "train.warmup_steps=1"],
                      vary=["model.mtp.depth=0,1"], seeds=2)
    report = run_ablation(ac, tmp_path / "abl", train_fn=counting_train)
    assert sorted(calls) == [0, 0, 1, 1]
    overall = {r["variant"]: r for r in report["table"] if r["domain"] == "overall"}
    assert set(overall) == {"mtp.depth=0", "mtp.depth=1"}
    assert overall["mtp.depth=0"]["n"] == 2 and overall["mtp.depth=1"]["exceeds_noise"] in (True, False)
    assert {r["domain"] for r in report["table"]} >= {"overall", "code", "prose"}
    saved = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert saved["table"][0]["variant"] == "mtp.depth=0"
    assert (tmp_path / "abl" / "ablation.png").stat().st_size > 1000
    # Different seeds give different losses (the seed reaches init and data order).
    runs = report["runs"]["mtp.depth=0"]
    assert runs[0]["val_loss"] != runs[1]["val_loss"]
    run_ablation(ac, tmp_path / "abl", train_fn=counting_train)
    assert len(calls) == 4  # resumed: nothing retrained
