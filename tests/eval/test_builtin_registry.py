"""The built-in eval registry: one module per evaluation, run in order, and a new one needs no other edit."""

import json

import pytest

from pretrain.eval.builtin import base
from pretrain.eval.builtin.base import BuiltinEval, builtin_evals, get_eval, register_eval
from pretrain.eval.config import EvalConfig
from pretrain.eval.run import run_audit, run_eval

from .test_run_eval import run_dir  # noqa: F401 - the module-scoped run fixture


def test_every_builtin_eval_is_its_own_module_in_order():
    evals = builtin_evals()
    assert [e.name for e in evals] == ["heldout", "samples", "needle", "contamination", "memorization", "lm_eval"]
    assert len({type(e).__module__ for e in evals}) == len(evals)
    on = [e.name for e in evals if e.enabled(EvalConfig())]
    assert on == ["heldout", "samples"]
    with pytest.raises(ValueError, match="unknown built-in eval 'nope'"):
        get_eval("nope")


@pytest.fixture
def longest_word():
    @register_eval("longest_word_test", order=70)
    class LongestWord(BuiltinEval):
        seen: list = []

        def enabled(self, cfg) -> bool:
            return True

        def run(self, ctx):
            text = [ctx.tok.decode([int(t) for t in d.tokens]) for ds in ctx.docs.values() for d in ds]
            longest = max(len(w) for t in text for w in t.split())
            LongestWord.seen.append(ctx.header["step"])
            return {"longest_word": ctx.write("longest_word.json", {**ctx.header, "longest": longest})}

    yield LongestWord
    base.EVALS.remove("longest_word_test")


def test_a_registered_eval_runs_with_the_others(run_dir, tmp_path, longest_word):  # noqa: F811
    written = run_eval(run_dir, None, tmp_path, EvalConfig(batch_size=4, seq_len=32, sample_tokens=3), device="cpu")
    assert list(written) == ["heldout", "samples", "longest_word"]
    got = json.loads((tmp_path / "longest_word.json").read_text())
    assert got["step"] == 7 and got["seq_len"] == 32 and got["longest"] >= len("towards")
    with pytest.raises(ValueError, match="registered twice"):
        register_eval("heldout")(longest_word)


def test_an_audit_without_a_model_never_loads_one(run_dir, tmp_path):  # noqa: F811
    (run_dir / "checkpoints" / "final" / "model.safetensors").rename(tmp_path / "hidden.safetensors")
    try:
        path = run_audit("contamination", run_dir, None, tmp_path / "eval", EvalConfig(), device="cpu")
    finally:
        (tmp_path / "hidden.safetensors").rename(run_dir / "checkpoints" / "final" / "model.safetensors")
    assert json.loads(path.read_text())["benchmarks"]
