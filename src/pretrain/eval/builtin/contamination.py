"""The contamination audit: n-gram overlap of benchmarks and held-out text with the training shards
(``contamination.json``). Needs no model."""

from __future__ import annotations

from pathlib import Path

from pretrain.data.shards import load_split
from pretrain.eval import contamination
from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval


@register_eval("contamination", order=40)
class Contamination(BuiltinEval):
    def enabled(self, cfg) -> bool:
        return cfg.contamination.enabled

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        c, tok = ctx.cfg.contamination, ctx.tok
        sets: dict[str, list] = {}
        docs = ctx.docs if c.include_heldout and (ctx.tokens / "val").is_dir() else None
        if docs:
            for name, ds in docs.items():
                sets[f"heldout/{name}"] = [d.tokens for d in ds]
        if c.include_tasks:
            for name, texts in contamination.bundled_task_texts().items():
                sets[name] = [tok.encode(t) for t in texts]
        for path in c.against:
            sets[Path(path).name.split(".")[0]] = [tok.encode(t) for t in contamination.jsonl_texts(path)]
        res = contamination.audit_contamination(load_split(ctx.tokens, "train"), sets, c.ngram, c.dirty_fraction,
                                                c.max_hits)
        for name, r in res["benchmarks"].items():
            ctx.say(f"contamination {name}: {r['contaminated_docs']}/{r['docs_with_ngrams']} docs, "
                    f"{r['ngram_overlap']:.2%} of {c.ngram}-grams seen in training")
        return {"contamination": contamination.save({**ctx.header, **res}, ctx.out)}
