import json
import random

import pytest
from eval_toys import ByteTokenizer, InductionModel, TinyCausalModel

from pretrain.eval.needle import _haystack_stream, build_case, run_needle

HAY = ["Grass grows slowly in the meadow while the river keeps running towards the sea. " * 3,
       "Clouds gather above the hills and the wind carries the smell of rain over the valley. " * 3]


@pytest.mark.parametrize("depth", [0.0, 0.3, 0.5, 1.0])
def test_needle_is_placed_at_the_requested_depth(depth):
    tok = ByteTokenizer()
    stream = _haystack_stream(tok, HAY)
    case = build_case(tok, stream, 300, depth, random.Random(1))
    assert len(case.tokens) == 300
    before = case.needle_start - 1  # haystack tokens before the needle (after BOS)
    assert before == round(depth * case.haystack_len)
    needle_text = tok.decode(case.tokens[case.needle_start:case.needle_start + case.needle_len])
    assert needle_text == f" The magic number for {case.key} is {case.value}."
    assert tok.decode(case.tokens[-case.answer_len:]) == f" {case.value}"


def test_copy_model_passes_and_random_model_fails(tmp_path):
    tok = ByteTokenizer()
    kw = dict(lengths=[140, 200], depths=[0.0, 0.5, 1.0], trials=2, seed=3)
    good = run_needle(InductionModel(), tok, HAY, **kw)
    assert good.passed and good.overall_accuracy == 1.0
    bad = run_needle(TinyCausalModel(max_len=256), tok, HAY, **kw)
    assert not bad.passed and bad.overall_accuracy == 0.0
    assert max(max(r) for r in bad.logprob) < min(min(r) for r in good.logprob)
    js, png = good.save(tmp_path)
    data = json.loads(js.read_text())
    assert data["passed"] is True and len(data["accuracy"]) == 2 and len(data["accuracy"][0]) == 3
    assert png.stat().st_size > 1000


def test_bad_lengths_are_clear_errors():
    tok = ByteTokenizer()
    with pytest.raises(ValueError, match="too short"):
        run_needle(InductionModel(), tok, HAY, lengths=[40])
    with pytest.raises(ValueError, match="exceeds the model context"):
        run_needle(InductionModel(), tok, HAY, lengths=[400], max_context=256)
    with pytest.raises(ValueError, match="haystack"):
        run_needle(InductionModel(), tok, ["  "], lengths=[200])
