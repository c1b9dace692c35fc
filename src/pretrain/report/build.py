"""``build_report``: one run directory in, one self-contained ``report/index.html`` out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pretrain.report.html import ImageSink, Page, Section, note, render_page
from pretrain.report.rundata import RunData, load_run
from pretrain.report.sections import SECTIONS


def build_sections(run: RunData, sink: ImageSink) -> list[Section]:
    """Every section that has input. A section that fails on unexpected input is left out and named in
    the page's warnings instead of taking the whole report down with it."""
    out = []
    for make in SECTIONS:
        try:
            section = make(run, sink)
        except Exception as exc:  # noqa: BLE001 - one odd artifact must not cost the whole report
            run.warnings.append(f"section '{make.__name__}' skipped: {type(exc).__name__}: {exc}")
            continue
        if section is not None:
            out.append(section)
    return out


def write_html(path: Path, text: str) -> None:
    """Write atomically so a reader (or a browser refresh) never sees half a page."""
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, embed_images: bool = True) -> Path:
    """Build ``<out_dir>/index.html`` (default ``<run_dir>/report/``) and return its path.

    With ``embed_images`` (the default) every plot is a base64 PNG inside the page, so the one file can
    be mailed around; otherwise PNGs are written beside it.
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    sink = ImageSink(out, embed=embed_images)
    sections = build_sections(run, sink)
    if not sections:
        sections = [Section("summary", "Run summary", note(
            f"Nothing recorded yet in {run.root}: no config.toml, metrics.jsonl, curated/, tokenizer/ or eval/ "
            "results. Run a stage and build the report again."))]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = Page(f"{run.name}: pre-training report", f"{run.root.resolve()} · generated {stamp}", sections,
                run.warnings)
    path = out / "index.html"
    write_html(path, render_page(page))
    return path
