"""``run_eval``: every evaluation of one checkpoint, written as JSON (and PNG) into ``<run>/eval/``.

Each evaluation is one module of :mod:`pretrain.eval.builtin`, registered by name. Always:
``heldout.json`` (per-domain loss, perplexity, bits per byte, with the unigram baseline) and
``samples.json`` (fixed prompts per domain, greedy and sampled; a copy per checkpoint under
``samples/``). Optional, from the config or the CLI flags: ``needle.json`` + ``needle.png``,
``contamination.json``, ``memorization.json``, ``lm_eval.json``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pretrain.eval.builtin import EvalContext, builtin_evals, get_eval
from pretrain.eval.config import EvalConfig


def _device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _run_root(ckpt: Path) -> Path | None:
    """The run directory holding a checkpoint (…/<run>/checkpoints/<name>/), if it is one."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def find_tokens_dir(ckpt: Path, tokens_dir: str | Path | None) -> Path:
    """``tokens_dir``, else <run>/tokens (the CLI passes the run's data.tokens when --tokens is not given)."""
    if tokens_dir:
        return Path(tokens_dir)
    root = _run_root(ckpt)
    if root is not None and (root / "tokens").is_dir():
        return root / "tokens"
    raise FileNotFoundError(f"no token directory found for {ckpt}: pass --tokens DIR (with val/ and train/ splits)")


def find_tokenizer(ckpt: Path) -> Path:
    for p in (ckpt / "tokenizer.json", *([_run_root(ckpt) / "tokenizer" / "tokenizer.json"] if _run_root(ckpt) else [])):
        if p.is_file():
            return p
    raise FileNotFoundError(f"no tokenizer.json in {ckpt} (or its run's tokenizer/)")


def _context(ckpt: Path, tokens_dir, out_dir, cfg: EvalConfig, device: str, progress: Any,
             full: bool, trained_seq_len: int = 0) -> EvalContext:
    """The evaluations' shared context for ``ckpt``; ``full`` adds seq_len to the header (run_eval's files):
    eval.seq_len, else the context the model trained at, else the model's, capped at the model's."""
    from pretrain.model.io import load_model
    from pretrain.tokenizer import load_tokenizer

    dev = _device(device)
    model = load_model(ckpt, device=dev).eval() if full else None  # a full evaluation fails early on a bad model
    tok = load_tokenizer(find_tokenizer(ckpt))
    tokens = find_tokens_dir(ckpt, tokens_dir)
    out = Path(out_dir) if out_dir else ((_run_root(ckpt) or ckpt) / "eval")
    meta_path = ckpt / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    header: dict[str, Any] = {"checkpoint": str(ckpt), "step": meta.get("step"), "tokens": meta.get("tokens")}
    ctx = EvalContext(cfg=cfg, ckpt=ckpt, tokens=tokens, out=out, tok=tok, device=dev, header=header,
                      say=progress or (lambda msg: None), load_model=lambda: load_model(ckpt, device=dev).eval())
    if model is not None:
        ctx.preload(model=model)
        model_ctx = ctx.model.cfg.max_seq_len
        seq_len = cfg.seq_len or trained_seq_len or model_ctx
        ctx.seq_len = header["seq_len"] = min(seq_len, model_ctx)
    return ctx


def run_eval(
    checkpoint_dir: str | Path,
    tokens_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    cfg: EvalConfig | None = None,
    device: str = "auto",
    progress: Any = None,
    trained_seq_len: int = 0,
) -> dict[str, Any]:
    """Evaluate a checkpoint (or a run directory's final/latest one); returns {name: written path}.

    Runs every enabled built-in evaluation (:mod:`pretrain.eval.builtin`, one module each) in order.
    ``out_dir`` defaults to ``<run>/eval`` (or ``<checkpoint>/eval`` for a loose checkpoint).
    ``progress`` is an optional callable receiving one-line status messages.
    ``trained_seq_len``: the context the model was trained at (train.seq_len, which the composition root
    reads from the run config), the evaluation context when eval.seq_len is 0; 0: the model's context.
    """
    from pretrain.model.io import resolve_checkpoint

    cfg = cfg or EvalConfig()
    ckpt = resolve_checkpoint(checkpoint_dir)
    ctx = _context(ckpt, tokens_dir, out_dir, cfg, device, progress, full=True, trained_seq_len=trained_seq_len)
    ctx.out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    for evaluation in builtin_evals():
        if evaluation.enabled(cfg):
            written |= evaluation.run(ctx)
    _manifest(ctx.out, ckpt, ctx.tokens, cfg)
    return written


def _manifest(out: Path, ckpt: Path, tokens: Path, cfg: EvalConfig) -> None:
    """The lineage manifest of the results: the checkpoint (by its meta.json) and the shards evaluated on."""
    from pretrain.configlib import to_dict
    from pretrain.lineage.manifest import MANIFEST, write_manifest

    inputs = [("checkpoint", ckpt / "meta.json")] if (ckpt / "meta.json").is_file() else []
    write_manifest(out, "eval", inputs=inputs, config=to_dict(cfg), seed=cfg.seed,
                   consumed=[m for m in (tokens / MANIFEST,) if m.is_file()],
                   extra={"checkpoint": str(ckpt.resolve())})


AUDITS = ("contamination", "memorization")


def run_audit(kind: str, checkpoint_dir: str | Path, tokens_dir: str | Path | None = None,
              out_dir: str | Path | None = None, cfg: EvalConfig | None = None, device: str = "auto",
              progress: Any = None) -> Path:
    """Only the contamination or memorization audit (``kind``) of a checkpoint or run; returns the JSON path.

    The contamination audit needs no model, only the tokenizer and the token shards.
    """
    from pretrain.model.io import resolve_checkpoint

    if kind not in AUDITS:
        raise ValueError(f"unknown audit {kind!r} (contamination or memorization)")
    ckpt = resolve_checkpoint(checkpoint_dir)
    ctx = _context(ckpt, tokens_dir, out_dir, cfg or EvalConfig(), device, progress, full=False)
    return get_eval(kind).run(ctx)[kind]


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
