import pytest

pytest.importorskip("lm_eval")

from eval_toys import ByteTokenizer, InductionModel, UniformByteModel  # noqa: E402

from pretrain.eval.lm_harness import PretrainLM, run_lm_eval  # noqa: E402


class Req:
    def __init__(self, *args):
        self.args = args


def test_adapter_methods_on_uniform_byte_model():
    lm = PretrainLM(model=UniformByteModel(), tokenizer=ByteTokenizer(), device="cpu", batch_size=2, max_length=8)
    text = "a rolling window over more than eight bytes"
    (rolling,) = lm.loglikelihood_rolling([Req(text)])
    assert rolling == pytest.approx(-len(text.encode()) * __import__("math").log(256), rel=1e-6)
    ll = lm.loglikelihood([Req("The sky is", " blue"), Req("", "x"), Req("abc", "")])
    assert ll[0][0] == pytest.approx(-5 * __import__("math").log(256), rel=1e-6)  # " blue" = 5 bytes
    assert ll[1][0] == pytest.approx(-__import__("math").log(256), rel=1e-6)
    assert ll[2] == (0.0, True)


@pytest.mark.slow
def test_offline_tasks_through_the_harness_uniform_model_is_8_bits_per_byte():
    out = run_lm_eval(UniformByteModel(), ByteTokenizer(), ["pretrain_offline_ppl", "pretrain_offline_mc"])
    ppl = out["results"]["pretrain_offline_ppl"]
    assert ppl["bits_per_byte,none"] == pytest.approx(8.0, abs=1e-6)
    assert ppl["byte_perplexity,none"] == pytest.approx(256.0, rel=1e-6)
    assert 0.0 <= out["results"]["pretrain_offline_mc"]["acc,none"] <= 1.0


@pytest.mark.slow
def test_generate_until_through_the_harness_copy_model_solves_pattern_task():
    out = run_lm_eval(InductionModel(k=6), ByteTokenizer(), ["pretrain_offline_gen"])
    assert out["results"]["pretrain_offline_gen"]["exact_match,none"] == 1.0
    out = run_lm_eval(UniformByteModel(), ByteTokenizer(), ["pretrain_offline_gen"])
    assert out["results"]["pretrain_offline_gen"]["exact_match,none"] < 0.5


def test_missing_lm_eval_gives_an_install_hint(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    monkeypatch.delitem(sys.modules, "pretrain.eval.lm_harness")
    with pytest.raises(ImportError, match=r"pip install 'pretrain\[eval\]'"):
        importlib.import_module("pretrain.eval.lm_harness")
