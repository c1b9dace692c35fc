"""lm-evaluation-harness tasks (``eval.lm_eval_tasks``) through the adapter (``lm_eval.json``)."""

from __future__ import annotations

from pathlib import Path

from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval


@register_eval("lm_eval", order=60)
class LmEval(BuiltinEval):
    def enabled(self, cfg) -> bool:
        return bool(cfg.lm_eval_tasks)

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        from pretrain.eval.lm_harness import run_lm_eval  # lm-eval is an optional extra

        res = run_lm_eval(ctx.model, ctx.tok, list(ctx.cfg.lm_eval_tasks), batch_size=ctx.cfg.batch_size,
                          device=ctx.device)
        path = ctx.write("lm_eval.json", {**ctx.header, **res})
        ctx.say(f"lm-eval: {', '.join(res.get('results', {}))}")
        return {"lm_eval": path}
