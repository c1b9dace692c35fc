"""``run_eval``: every evaluation of one checkpoint, written as JSON (and PNG) into ``<run>/eval/``.

Always: ``heldout.json`` (per-domain loss, perplexity, bits per byte, with the unigram baseline) and
``samples.json`` (fixed prompts per domain, greedy and sampled; a copy per checkpoint under
``samples/``). Optional, from the config or the CLI flags: ``needle.json`` + ``needle.png``,
``contamination.json``, ``memorization.json``, ``lm_eval.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pretrain.eval.config import EvalConfig


def _device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(data, indent=2, default=float), encoding="utf-8")
    tmp.replace(path)
    return path


def _run_root(ckpt: Path) -> Path | None:
    """The run directory holding a checkpoint (…/<run>/checkpoints/<name>/), if it is one."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def _saved_config(ckpt: Path) -> Any:
    """The run config saved with the checkpoint, or None."""
    from pretrain.config import load_saved

    for path in (ckpt / "config.toml", *([_run_root(ckpt) / "config.toml"] if _run_root(ckpt) else [])):
        if path.is_file():
            try:
                return load_saved(path)
            except ValueError:
                return None
    return None


def find_tokens_dir(ckpt: Path, tokens_dir: str | Path | None) -> Path:
    """--tokens, else the run config's data.tokens, else <run>/tokens."""
    if tokens_dir:
        return Path(tokens_dir)
    cfg = _saved_config(ckpt)
    if cfg is not None and cfg.data.tokens:
        return Path(cfg.data.tokens)
    root = _run_root(ckpt)
    if root is not None and (root / "tokens").is_dir():
        return root / "tokens"
    raise FileNotFoundError(f"no token directory found for {ckpt}: pass --tokens DIR (with val/ and train/ splits)")


def find_tokenizer(ckpt: Path) -> Path:
    for p in (ckpt / "tokenizer.json", *([_run_root(ckpt) / "tokenizer" / "tokenizer.json"] if _run_root(ckpt) else [])):
        if p.is_file():
            return p
    raise FileNotFoundError(f"no tokenizer.json in {ckpt} (or its run's tokenizer/)")


def run_eval(
    checkpoint_dir: str | Path,
    tokens_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    cfg: EvalConfig | None = None,
    device: str = "auto",
    progress: Any = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint (or a run directory's final/latest one); returns {name: written path}.

    ``out_dir`` defaults to ``<run>/eval`` (or ``<checkpoint>/eval`` for a loose checkpoint).
    ``progress`` is an optional callable receiving one-line status messages.
    """
    from pretrain.eval import heldout
    from pretrain.eval.generation import default_prompts, make_samples
    from pretrain.eval.needle import min_length, run_needle
    from pretrain.model.io import load_model, resolve_checkpoint
    from pretrain.tokenizer import load_tokenizer

    say = progress or (lambda msg: None)
    cfg = cfg or EvalConfig()
    ckpt = resolve_checkpoint(checkpoint_dir)
    dev = _device(device)
    model = load_model(ckpt, device=dev).eval()
    tok = load_tokenizer(find_tokenizer(ckpt))
    tokens = find_tokens_dir(ckpt, tokens_dir)
    out = Path(out_dir) if out_dir else ((_run_root(ckpt) or ckpt) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    meta_path = ckpt / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    saved = _saved_config(ckpt)
    seq_len = cfg.seq_len or (saved.train.seq_len if saved is not None else 0) or model.cfg.max_seq_len
    seq_len = min(seq_len, model.cfg.max_seq_len)
    header = {"checkpoint": str(ckpt), "step": meta.get("step"), "tokens": meta.get("tokens"), "seq_len": seq_len}
    written: dict[str, Any] = {}

    t0 = time.time()
    docs = heldout.load_split_docs(tokens, "val", cfg.max_docs_per_domain, cfg.max_tokens_per_domain)
    result = heldout.evaluate_heldout(model, docs, seq_len, cfg.batch_size, dev, tok.bos_id)
    if cfg.unigram_baseline and (tokens / "train").is_dir():
        counts = heldout.split_token_counts(tokens, tok.vocab_size, "train")
        uni = heldout.unigram_bits_per_byte(counts, docs, tok.vocab_size)
        # Flat {domain: {...}} so readers index it like "domains"; the pooled figure sits beside it.
        result["unigram"] = uni["domains"]
        result["unigram_overall"] = uni["overall"]
        result["unigram_train_tokens"] = uni["train_tokens"]
        for name, r in result["domains"].items():
            r["unigram_bits_per_byte"] = uni["domains"][name]["bits_per_byte"]
        result["overall"]["unigram_bits_per_byte"] = uni["overall"]["bits_per_byte"]
    result["time_s"] = round(time.time() - t0, 2)
    written["heldout"] = _write(out / "heldout.json", {**header, **result})
    say(f"held-out: {result['overall']['bits_per_byte']:.4f} bits/byte, loss {result['overall']['loss']:.4f} "
        f"({result['time_s']:.1f}s)")

    prompts: dict[str, Any] = {"prompt": list(cfg.sample_prompts)} if cfg.sample_prompts else default_prompts(tok, docs)
    rows = make_samples(model, tok, prompts, cfg.sample_tokens, cfg.sample_temperature, cfg.sample_top_k, cfg.seed)
    samples = {**header, "temperature": cfg.sample_temperature, "top_k": cfg.sample_top_k, "samples": rows}
    written["samples"] = _write(out / "samples.json", samples)
    _write(out / "samples" / f"{ckpt.name}.json", samples)
    say(f"samples: {len(rows)} prompts")

    if cfg.needle.enabled:
        n = cfg.needle
        ctx = model.cfg.max_seq_len
        shortest = min_length(tok, n.value_digits)
        lengths = n.lengths or sorted(L for L in {ctx // 4, ctx // 2, ctx} if L >= shortest)
        if not lengths:
            say(f"needle: skipped, the model context {ctx} is shorter than the {shortest} tokens a needle test needs")
        else:
            texts = [tok.decode([int(t) for t in d.tokens]) for ds in docs.values() for d in ds]
            res = run_needle(
                model, tok, texts, lengths, n.depths, n.trials, n.pass_threshold, n.seed, n.value_digits,
                cfg.batch_size, dev, max_context=ctx)
            res.trials = res.trials[:200]
            js, png = res.save(out)
            written["needle"], written["needle_png"] = js, png
            say(f"needle: {res.overall_accuracy:.2f} exact match at lengths {lengths} "
                f"({'pass' if res.passed else 'fail'})")

    if cfg.contamination.enabled:
        written["contamination"] = _contamination(tok, tokens, docs, cfg, out, header, say)
    if cfg.memorization.enabled:
        written["memorization"] = _memorization(model, tok, tokens, cfg, dev, out, header, say)

    if cfg.lm_eval_tasks:
        from pretrain.eval.lm_harness import run_lm_eval

        res = run_lm_eval(model, tok, list(cfg.lm_eval_tasks), batch_size=cfg.batch_size, device=dev)
        written["lm_eval"] = _write(out / "lm_eval.json", {**header, **res})
        say(f"lm-eval: {', '.join(res.get('results', {}))}")
    _manifest(out, ckpt, tokens, cfg)
    return written


def _manifest(out: Path, ckpt: Path, tokens: Path, cfg: EvalConfig) -> None:
    """The lineage manifest of the results: the checkpoint (by its meta.json) and the shards evaluated on."""
    from pretrain.configlib import to_dict
    from pretrain.lineage.manifest import MANIFEST, write_manifest

    inputs = [("checkpoint", ckpt / "meta.json")] if (ckpt / "meta.json").is_file() else []
    write_manifest(out, "eval", inputs=inputs, config=to_dict(cfg), seed=cfg.seed,
                   consumed=[m for m in (tokens / MANIFEST,) if m.is_file()],
                   extra={"checkpoint": str(ckpt.resolve())})


def _contamination(tok: Any, tokens: Path, docs: dict | None, cfg: EvalConfig, out: Path, header: dict,
                   say: Any) -> Path:
    from pretrain.data.shards import load_split
    from pretrain.eval import contamination

    c = cfg.contamination
    sets: dict[str, list] = {}
    if c.include_heldout and docs:
        for name, ds in docs.items():
            sets[f"heldout/{name}"] = [d.tokens for d in ds]
    if c.include_tasks:
        for name, texts in contamination.bundled_task_texts().items():
            sets[name] = [tok.encode(t) for t in texts]
    for path in c.against:
        sets[Path(path).name.split(".")[0]] = [tok.encode(t) for t in contamination.jsonl_texts(path)]
    res = contamination.audit_contamination(load_split(tokens, "train"), sets, c.ngram, c.dirty_fraction, c.max_hits)
    for name, r in res["benchmarks"].items():
        say(f"contamination {name}: {r['contaminated_docs']}/{r['docs_with_ngrams']} docs, "
            f"{r['ngram_overlap']:.2%} of {c.ngram}-grams seen in training")
    return contamination.save({**header, **res}, out)


def _memorization(model: Any, tok: Any, tokens: Path, cfg: EvalConfig, dev: str, out: Path, header: dict,
                  say: Any) -> Path:
    from pretrain.data.shards import load_split
    from pretrain.eval import memorization

    m = cfg.memorization
    ctx = model.cfg.max_seq_len
    if m.prefix_tokens + m.continuation_tokens + 1 > ctx:  # BOS + prefix + continuation must fit
        half = (ctx - 1) // 2
        say(f"memorization: prefix {m.prefix_tokens} + continuation {m.continuation_tokens} exceeds the context "
            f"{ctx}; using {half} + {half}")
        m = replace(m, prefix_tokens=half, continuation_tokens=half)
    val = load_split(tokens, "val") if (tokens / "val").is_dir() else None
    res = memorization.audit_memorization(model, load_split(tokens, "train"), val, m.prefix_tokens,
                                          m.continuation_tokens, m.docs_per_domain, m.seed, tok.bos_id,
                                          cfg.batch_size, dev)
    for name, r in res["train"]["domains"].items():
        ctrl = res.get("heldout", {}).get("domains", {}).get(name)
        say(f"memorization {name}: {r['exact_match_rate']:.1%} of {r['samples']} training prefixes continued "
            f"verbatim" + (f" (held-out control {ctrl['exact_match_rate']:.1%})" if ctrl else ""))
    return memorization.save({**header, **res}, out)


def run_audit(kind: str, checkpoint_dir: str | Path, tokens_dir: str | Path | None = None,
              out_dir: str | Path | None = None, cfg: EvalConfig | None = None, device: str = "auto",
              progress: Any = None) -> Path:
    """Only the contamination or memorization audit (``kind``) of a checkpoint or run; returns the JSON path.

    The contamination audit needs no model, only the tokenizer and the token shards.
    """
    from pretrain.eval import heldout
    from pretrain.model.io import resolve_checkpoint
    from pretrain.tokenizer import load_tokenizer

    if kind not in ("contamination", "memorization"):
        raise ValueError(f"unknown audit {kind!r} (contamination or memorization)")
    say = progress or (lambda msg: None)
    cfg = cfg or EvalConfig()
    ckpt = resolve_checkpoint(checkpoint_dir)
    tok = load_tokenizer(find_tokenizer(ckpt))
    tokens = find_tokens_dir(ckpt, tokens_dir)
    out = Path(out_dir) if out_dir else ((_run_root(ckpt) or ckpt) / "eval")
    meta_path = ckpt / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    header = {"checkpoint": str(ckpt), "step": meta.get("step"), "tokens": meta.get("tokens")}
    if kind == "contamination":
        docs = (heldout.load_split_docs(tokens, "val", cfg.max_docs_per_domain, cfg.max_tokens_per_domain)
                if cfg.contamination.include_heldout and (tokens / "val").is_dir() else None)
        return _contamination(tok, tokens, docs, cfg, out, header, say)
    from pretrain.model.io import load_model

    dev = _device(device)
    return _memorization(load_model(ckpt, device=dev).eval(), tok, tokens, cfg, dev, out, header, say)


def with_flags(cfg: EvalConfig, needle: bool = False, contamination: bool = False, memorization: bool = False,
               lm_eval: str = "") -> EvalConfig:
    """A copy of ``cfg`` with the CLI's switches applied."""
    cfg = replace(cfg)
    if needle:
        cfg.needle = replace(cfg.needle, enabled=True)
    if contamination:
        cfg.contamination = replace(cfg.contamination, enabled=True)
    if memorization:
        cfg.memorization = replace(cfg.memorization, enabled=True)
    if lm_eval:
        cfg.lm_eval_tasks = [t.strip() for t in lm_eval.split(",") if t.strip()]
    return cfg
