"""The quickstart: every stage once, end to end, on the built-in corpus.

corpus -> curate -> tokenizer -> token shards -> train -> evaluate -> report. Each step is a call into
the stage's Python API; this module only wires them together, times them and prints where things went.
A step whose output is already complete is not redone, so an interrupted quickstart resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from pretrain.config import RunConfig, save
from pretrain.rundir import RunDir

console = Console()


@dataclass
class QuickstartResult:
    run_dir: Path
    report: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    heldout: dict = field(default_factory=dict)


def _step(name: str, done: Path, fn: Callable[[], object], timings: dict[str, float]) -> None:
    """Run one stage unless its completion marker exists; time it."""
    if done.exists():
        console.print(f"[dim]- {name}: already done ({done.parent})[/dim]")
        return
    console.rule(f"[bold]{name}")
    t0 = time.perf_counter()
    fn()
    timings[name] = round(time.perf_counter() - t0, 2)
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps({"seconds": timings[name]}))
    console.print(f"[green]✓ {name}[/green] in {timings[name]:.1f} s")


def run_quickstart(cfg: RunConfig, run_dir: str | Path, fresh: bool = False, progress: bool = True) -> QuickstartResult:
    from pretrain.data.builtin import build_builtin_corpus
    from pretrain.data.curate import curate
    from pretrain.data.record import read_dir
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.eval import run_eval
    from pretrain.report import build_report
    from pretrain.tokenizer import load_tokenizer, train_tokenizer
    from pretrain.train import train

    rd = RunDir(Path(run_dir))
    if fresh and rd.root.exists():
        import shutil

        shutil.rmtree(rd.root)
    rd.make()
    save(cfg, rd.config)
    timings: dict[str, float] = {}
    markers = rd.root / ".done"
    val_fraction = cfg.data.val_fraction

    def corpus() -> None:
        inputs = [i for i in cfg.data.inputs if i != "builtin"]
        if "builtin" in cfg.data.inputs or not inputs:
            stats = build_builtin_corpus(rd.corpus, val_fraction=val_fraction,
                                         domains=tuple(cfg.data.builtin_domains), max_docs=cfg.data.builtin_max_docs)
            for d, s in stats.items():
                console.print(f"  {d:11s} {s['documents']:6d} documents {s['bytes'] / 1e6:7.2f} MB")

    def curation() -> None:
        inputs = [str(rd.corpus)] if "builtin" in cfg.data.inputs or not cfg.data.inputs else []
        inputs += [i for i in cfg.data.inputs if i != "builtin"]
        curate(inputs, rd.curated, cfg.data.curate, workers=cfg.data.curate.workers or None, progress=progress)

    def tokenizer() -> None:
        # Train on the training side of the split only, so validation text stays unseen. read_dir reads
        # the curated output in either format (data.curate.output_format), as tokenize_corpus does.
        train_tokenizer(read_dir(rd.curated / "data"), cfg.tokenizer, rd.tokenizer, val_fraction=val_fraction,
                        inputs=[rd.curated / "data"])

    def tokenize() -> None:
        tok = load_tokenizer(rd.tokenizer / "tokenizer.json")
        tokenize_corpus(rd.curated / "data", tok, rd.tokens, val_fraction=val_fraction)

    def training() -> None:
        train(cfg, rd, fresh=fresh, progress=progress)

    def evaluation() -> None:
        run_eval(rd.checkpoints / "final", rd.tokens, rd.eval, cfg.eval, trained_seq_len=cfg.train.seq_len)

    def report() -> None:
        build_report(rd.root)

    if not cfg.tokenizer.path:
        _step("built-in corpus", markers / "corpus", corpus, timings)
        _step("curate", markers / "curate", curation, timings)
        _step("tokenizer", markers / "tokenizer", tokenizer, timings)
        _step("tokenize", markers / "tokenize", tokenize, timings)
    _step("train", markers / "train", training, timings)
    _step("evaluate", markers / "eval", evaluation, timings)
    _step("report", markers / "report", report, timings)

    heldout_path = rd.eval / "heldout.json"
    heldout = json.loads(heldout_path.read_text()) if heldout_path.exists() else {}
    (rd.root / "quickstart_timings.json").write_text(json.dumps(timings, indent=2))
    index = rd.report / "index.html"
    return QuickstartResult(rd.root, index if index.exists() else None, timings, heldout)
