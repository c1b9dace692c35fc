"""Held-out loss, perplexity and bits per byte per domain, with the unigram baseline (``heldout.json``)."""

from __future__ import annotations

import time
from pathlib import Path

from pretrain.eval import heldout
from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval


@register_eval("heldout", order=10)
class Heldout(BuiltinEval):
    def enabled(self, cfg) -> bool:
        return True

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        cfg, t0 = ctx.cfg, time.time()
        docs = ctx.docs
        result = heldout.evaluate_heldout(ctx.model, docs, ctx.seq_len, cfg.batch_size, ctx.device, ctx.tok.bos_id)
        if cfg.unigram_baseline and (ctx.tokens / "train").is_dir():
            vocab = ctx.tok.vocab_size
            uni = heldout.unigram_bits_per_byte(heldout.split_token_counts(ctx.tokens, vocab, "train"), docs, vocab)
            # Flat {domain: {...}} so readers index it like "domains"; the pooled figure sits beside it.
            result["unigram"] = uni["domains"]
            result["unigram_overall"] = uni["overall"]
            result["unigram_train_tokens"] = uni["train_tokens"]
            for name, r in result["domains"].items():
                r["unigram_bits_per_byte"] = uni["domains"][name]["bits_per_byte"]
            result["overall"]["unigram_bits_per_byte"] = uni["overall"]["bits_per_byte"]
        result["time_s"] = round(time.time() - t0, 2)
        path = ctx.write("heldout.json", {**ctx.header, **result})
        ctx.say(f"held-out: {result['overall']['bits_per_byte']:.4f} bits/byte, loss {result['overall']['loss']:.4f} "
                f"({result['time_s']:.1f}s)")
        return {"heldout": path}
