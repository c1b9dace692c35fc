"""Needle in a haystack over the model's context (``needle.json`` + ``needle.png``)."""

from __future__ import annotations

from pathlib import Path

from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval
from pretrain.eval.needle import min_length, run_needle


@register_eval("needle", order=30)
class Needle(BuiltinEval):
    def enabled(self, cfg) -> bool:
        return cfg.needle.enabled

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        n, tok, model = ctx.cfg.needle, ctx.tok, ctx.model
        ctx_len = model.cfg.max_seq_len
        shortest = min_length(tok, n.value_digits)
        lengths = n.lengths or sorted(L for L in {ctx_len // 4, ctx_len // 2, ctx_len} if L >= shortest)
        if not lengths:
            ctx.say(f"needle: skipped, the model context {ctx_len} is shorter than the {shortest} tokens a needle "
                    "test needs")
            return {}
        texts = [tok.decode([int(t) for t in d.tokens]) for ds in ctx.docs.values() for d in ds]
        res = run_needle(model, tok, texts, lengths, n.depths, n.trials, n.pass_threshold, n.seed, n.value_digits,
                         ctx.cfg.batch_size, ctx.device, max_context=ctx_len)
        res.trials = res.trials[:200]
        js, png = res.save(ctx.out)
        ctx.say(f"needle: {res.overall_accuracy:.2f} exact match at lengths {lengths} "
                f"({'pass' if res.passed else 'fail'})")
        return {"needle": js, "needle_png": png}
