"""CLI commands of the eval stage (argument parsing only; the work is in pretrain.eval).

    pretrain eval RUN_OR_CHECKPOINT [--tokens DIR] [--out DIR] [--needle] [--contamination]
                  [--memorization] [--lm-eval|--tasks TASKS] [eval overrides such as batch_size=4]
    pretrain audit contamination RUN_OR_CHECKPOINT [--against FILE.jsonl ...] [--ngram 13]
    pretrain audit memorization RUN_OR_CHECKPOINT [--docs 32] [--prefix 32] [--continuation 32]
"""

from __future__ import annotations

from pathlib import Path

import typer

audit_app = typer.Typer(help="Audits of a trained model against its training data.", no_args_is_help=True)

_CKPT_HELP = "Checkpoint directory, or a run directory (its checkpoints/final or latest step)."
_TOKENS_HELP = "Token shard directory with val/ and train/ (default: the run's data.tokens or <run>/tokens)."
_OUT_HELP = "Where the JSON goes (default: <run>/eval)."
_OVERRIDES_HELP = "Overrides of the eval config, e.g. batch_size=4 needle.lengths=[128,256] seq_len=128."


def _saved(checkpoint: Path):
    """The run config recorded with the checkpoint (or its run), or None. The CLI is the composition root:
    it hands the eval stage its section and the few other fields it needs, never the whole config."""
    from pretrain.config import saved_for_checkpoint
    from pretrain.model.io import resolve_checkpoint

    return saved_for_checkpoint(resolve_checkpoint(checkpoint))


def _tokens(tokens: Path | None, saved) -> Path | None:
    """--tokens, else the run's data.tokens (else the eval stage looks in <run>/tokens)."""
    if tokens is None and saved is not None and saved.data.tokens:
        return Path(saved.data.tokens)
    return tokens


def _eval_config(saved, overrides: list[str] | None):
    """The run's saved eval section (if any), with dotted overrides relative to `eval`."""
    from pretrain import configlib
    from pretrain.eval.config import EvalConfig

    base = configlib.to_dict(saved.eval) if saved is not None else {}
    data = configlib.apply_overrides({"eval": base}, [f"eval.{o}" for o in overrides or []])
    cfg = configlib.from_dict(EvalConfig, data["eval"], "eval")
    configlib.validate(cfg, "eval")
    return cfg


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _prepare(checkpoint: Path, out: Path | None) -> None:
    """Before loading anything: name the step checkpoint a run directory falls back to, and prove the
    output folder (``--out``, else the run's eval/) writable."""
    from pretrain.cli.guards import note_checkpoint
    from pretrain.model.io import resolve_checkpoint
    from pretrain.writable import ensure_writable

    ckpt = resolve_checkpoint(checkpoint)
    note_checkpoint(checkpoint, ckpt)
    run_root = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    ensure_writable(out or run_root / "eval", "--out" if out else "eval folder")


def eval_command(
    checkpoint: Path = typer.Argument(..., help=_CKPT_HELP),
    overrides: list[str] = typer.Argument(None, help=_OVERRIDES_HELP),
    tokens: Path = typer.Option(None, "--tokens", help=_TOKENS_HELP),
    out: Path = typer.Option(None, "--out", help=_OUT_HELP),
    needle: bool = typer.Option(False, "--needle", help="Also run needle-in-a-haystack (needle.json, needle.png)."),
    contamination: bool = typer.Option(False, "--contamination", help="Also run the n-gram contamination audit."),
    memorization: bool = typer.Option(False, "--memorization", help="Also run the memorization audit."),
    lm_eval: str = typer.Option("", "--lm-eval", "--tasks", help="Comma-separated lm-eval tasks (needs the eval "
                                "extra), e.g. pretrain_offline (bundled, offline) or hellaswag."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
) -> None:
    """Evaluate a checkpoint: held-out loss, perplexity and bits per byte per domain (with the unigram
    baseline) and samples, plus the optional needle test, audits and lm-eval tasks; JSON into <run>/eval/."""
    from pretrain.eval.run import run_eval, with_flags

    saved = _saved(checkpoint)
    cfg = with_flags(_eval_config(saved, overrides), needle, contamination, memorization, lm_eval)
    _prepare(checkpoint, out)
    written = run_eval(checkpoint, _tokens(tokens, saved), out, cfg, device=device, progress=_say,
                       trained_seq_len=saved.train.seq_len if saved is not None else 0)
    for name, path in written.items():
        typer.echo(f"{name}: {path}")


@audit_app.command("contamination")
def audit_contamination_command(
    checkpoint: Path = typer.Argument(..., help=_CKPT_HELP + " Only its tokenizer is used."),
    overrides: list[str] = typer.Argument(None, help=_OVERRIDES_HELP),
    against: list[Path] = typer.Option(None, "--against", help="JSONL file of records with `text` to audit; repeatable."),
    ngram: int = typer.Option(0, "--ngram", help="n-gram size in tokens (0 = eval.contamination.ngram, 13)."),
    tokens: Path = typer.Option(None, "--tokens", help=_TOKENS_HELP),
    out: Path = typer.Option(None, "--out", help=_OUT_HELP),
) -> None:
    """n-gram overlap of evaluation sets (held-out split, bundled tasks, --against files) with the training
    shards, per benchmark, with the overlapping training documents traced to their source."""
    from dataclasses import replace

    from pretrain.eval.run import run_audit

    saved = _saved(checkpoint)
    cfg = _eval_config(saved, overrides)
    _prepare(checkpoint, out)
    c = cfg.contamination
    cfg.contamination = replace(c, ngram=ngram or c.ngram, against=[*c.against, *map(str, against or [])])
    path = run_audit("contamination", checkpoint, _tokens(tokens, saved), out, cfg, progress=_say)
    typer.echo(f"contamination: {path}")


@audit_app.command("memorization")
def audit_memorization_command(
    checkpoint: Path = typer.Argument(..., help=_CKPT_HELP),
    overrides: list[str] = typer.Argument(None, help=_OVERRIDES_HELP),
    docs: int = typer.Option(0, "--docs", help="Training documents per domain (0 = eval.memorization setting)."),
    prefix: int = typer.Option(0, "--prefix", help="Prompt tokens (0 = config)."),
    continuation: int = typer.Option(0, "--continuation", help="Tokens that must match exactly (0 = config)."),
    tokens: Path = typer.Option(None, "--tokens", help=_TOKENS_HELP),
    out: Path = typer.Option(None, "--out", help=_OUT_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
) -> None:
    """Exact-match rate of greedy continuations of training-document prefixes per domain, with held-out
    documents as the control."""
    from dataclasses import replace

    from pretrain.eval.run import run_audit

    saved = _saved(checkpoint)
    cfg = _eval_config(saved, overrides)
    _prepare(checkpoint, out)
    m = cfg.memorization
    cfg.memorization = replace(m, docs_per_domain=docs or m.docs_per_domain, prefix_tokens=prefix or m.prefix_tokens,
                               continuation_tokens=continuation or m.continuation_tokens)
    path = run_audit("memorization", checkpoint, _tokens(tokens, saved), out, cfg, device, progress=_say)
    typer.echo(f"memorization: {path}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("eval")(eval_command)
    app.add_typer(audit_app, name="audit")
