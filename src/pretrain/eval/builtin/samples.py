"""Greedy and sampled continuations of fixed prompts (``samples.json``, and a copy per checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval
from pretrain.eval.generation import default_prompts, make_samples


@register_eval("samples", order=20)
class Samples(BuiltinEval):
    def enabled(self, cfg) -> bool:
        return True

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        cfg = ctx.cfg
        prompts: dict[str, Any] = ({"prompt": list(cfg.sample_prompts)} if cfg.sample_prompts
                                   else default_prompts(ctx.tok, ctx.docs))
        rows = make_samples(ctx.model, ctx.tok, prompts, cfg.sample_tokens, cfg.sample_temperature,
                            cfg.sample_top_k, cfg.seed)
        samples = {**ctx.header, "temperature": cfg.sample_temperature, "top_k": cfg.sample_top_k, "samples": rows}
        path = ctx.write("samples.json", samples)
        ctx.write(f"samples/{ctx.ckpt.name}.json", samples)
        ctx.say(f"samples: {len(rows)} prompts")
        return {"samples": path}
