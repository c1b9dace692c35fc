"""The memorization audit: training prefixes the model continues verbatim, against a held-out control
(``memorization.json``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pretrain.data.shards import load_split
from pretrain.eval import memorization
from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval


@register_eval("memorization", order=50)
class Memorization(BuiltinEval):
    def enabled(self, cfg) -> bool:
        return cfg.memorization.enabled

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        m, model = ctx.cfg.memorization, ctx.model
        ctx_len = model.cfg.max_seq_len
        if m.prefix_tokens + m.continuation_tokens + 1 > ctx_len:  # BOS + prefix + continuation must fit
            half = (ctx_len - 1) // 2
            ctx.say(f"memorization: prefix {m.prefix_tokens} + continuation {m.continuation_tokens} exceeds the "
                    f"context {ctx_len}; using {half} + {half}")
            m = replace(m, prefix_tokens=half, continuation_tokens=half)
        val = load_split(ctx.tokens, "val") if (ctx.tokens / "val").is_dir() else None
        res = memorization.audit_memorization(model, load_split(ctx.tokens, "train"), val, m.prefix_tokens,
                                              m.continuation_tokens, m.docs_per_domain, m.seed, ctx.tok.bos_id,
                                              ctx.cfg.batch_size, ctx.device)
        for name, r in res["train"]["domains"].items():
            ctrl = res.get("heldout", {}).get("domains", {}).get(name)
            ctx.say(f"memorization {name}: {r['exact_match_rate']:.1%} of {r['samples']} training prefixes "
                    "continued verbatim" + (f" (held-out control {ctrl['exact_match_rate']:.1%})" if ctrl else ""))
        return {"memorization": memorization.save({**ctx.header, **res}, ctx.out)}
