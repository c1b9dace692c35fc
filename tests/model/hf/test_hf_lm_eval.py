"""The exported quickstart model (our own modeling code) scores through lm-eval's own ``hf`` model as
it does through ``pretrain eval``'s adapter."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lm_eval")

from model_helpers import randomise  # noqa: E402

from pretrain.eval.lm_harness import TASKS_DIR, PretrainLM, run_lm_eval  # noqa: E402
from pretrain.model import Transformer  # noqa: E402
from pretrain.model.config import ModelConfig  # noqa: E402
from pretrain.model.hf import export_hf  # noqa: E402
from pretrain.presets import PRESETS  # noqa: E402
from pretrain.tokenizer import load_tokenizer  # noqa: E402


class Req:
    def __init__(self, *args):
        self.args = args


@pytest.mark.slow
def test_lm_eval_hf_model_scores_the_export_as_pretrain_eval(tmp_path, tokenizer_file):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM  # the import registers "hf", as lm-eval's CLI does
    from lm_eval.tasks import TaskManager

    tok = load_tokenizer(tokenizer_file)
    fields = PRESETS["quickstart"]["model"] | {"dim": 32, "max_seq_len": 64, "vocab_size": tok.vocab_size}
    torch.manual_seed(0)
    model = randomise(Transformer(ModelConfig(**fields)))
    out = export_hf(model, tmp_path / "hf", tokenizer=tokenizer_file)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)

    def hf(task: str, extra: str = "") -> dict:
        args = f"pretrained={out},trust_remote_code=True,dtype=float32{extra}"
        return simple_evaluate(model="hf", model_args=args, device="cpu", tasks=[task], task_manager=manager,
                               bootstrap_iters=0, batch_size=4)["results"][task]

    # Multiple choice, exactly as the model_args: the exported tokenizer prepends <|bos|> itself.
    mc = "pretrain_offline_mc"
    ours, theirs = run_lm_eval(model, tok, [mc])["results"][mc], hf(mc)
    assert (theirs["acc,none"], theirs["acc_norm,none"]) == (ours["acc,none"], ours["acc_norm,none"])
    # ... and the log-likelihoods behind such scores, request by request.
    requests = [Req("To be, or not to be,", " that is the question."), Req("", "def add(a, b):"),
                Req("def add(a, b):\n", "    return a + b")]
    want = PretrainLM(model=model, tokenizer=tok, device="cpu").loglikelihood(requests)
    got = HFLM(pretrained=str(out), trust_remote_code=True, dtype="float32", device="cpu").loglikelihood(requests)
    for (w, w_greedy), (g, g_greedy) in zip(want, got, strict=True):
        assert g == pytest.approx(w, abs=1e-4) and g_greedy == w_greedy
    # Rolling perplexity: lm-eval puts its own prefix token (<|bos|>) before each window, so the tokenizer's
    # must be off (add_bos_token=False), else every text would start <|bos|><|bos|>.
    ppl = "pretrain_offline_ppl"
    ours, theirs = run_lm_eval(model, tok, [ppl])["results"][ppl], hf(ppl, ",add_bos_token=False")
    for metric in ("bits_per_byte,none", "byte_perplexity,none", "word_perplexity,none"):
        assert theirs[metric] == pytest.approx(ours[metric], rel=1e-5), metric
    assert ours["bits_per_byte,none"] < 12  # a real score, not a degenerate one
