"""Inputs of the curation throughput benchmark: synthetic web pages from real text, or real HTML pages
written as JSONL files of web records (see curate_throughput.py).
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path


def source_paragraphs() -> list[str]:
    try:
        from pretrain.data.builtin import literature_documents

        paras = [p for d in literature_documents(chunk_chars=4000) for p in d.text.split("\n\n") if len(p) > 200]
    except FileNotFoundError:
        from pretrain.data.builtin import docs_documents

        paras = [p for d in docs_documents() for p in d.text.split("\n\n") if len(p) > 200]
    return paras


def make_pages(out: Path, n: int, seed: int = 0, files: int = 4) -> int:
    """n HTML pages in ``files`` JSONL files; 5% exact and 5% near copies of earlier pages. Returns bytes."""
    rng = random.Random(seed)
    paras = source_paragraphs()
    out.mkdir(parents=True, exist_ok=True)
    handles = [open(out / f"part_{k}.jsonl", "w", encoding="utf-8") for k in range(files)]
    bodies: list[str] = []
    total = 0
    for i in range(n):
        r = rng.random()
        if bodies and r < 0.05:
            body = bodies[rng.randrange(len(bodies))]
        elif bodies and r < 0.10:
            body = bodies[rng.randrange(len(bodies))].replace("</p>", " Indeed.</p>", 1)
        else:
            start = rng.randrange(max(1, len(paras) - 12))
            body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paras[start: start + rng.randint(4, 10)])
        bodies.append(body)
        page = (f"<!DOCTYPE html><html><head><title>Page {i}</title></head><body>"
                f"<nav><a href='/'>Home</a> | <a href='/about'>About</a> | <a href='/shop'>Shop</a></nav>"
                f"<article><h1>Page {i}</h1>\n{body}\n</article>"
                f"<footer>Copyright 2024. We use cookies. <a href='/privacy'>Privacy policy</a></footer>"
                f"</body></html>")
        handles[i * files // n].write(json.dumps({"text": page, "id": f"page{i}", "domain": "web"}) + "\n")
        total += len(page.encode())
    for h in handles:
        h.close()
    return total


def real_pages(html_dir: Path, n: int, out: Path, files: int = 4) -> tuple[list[tuple[str, str]], int]:
    """n pages taken evenly from the sorted HTML files under ``html_dir``, written as ``files`` JSONL files
    of web records (id = path under html_dir). Returns [(id, html)] and the input bytes."""
    paths = sorted(html_dir.rglob("*.html"))
    if len(paths) < n:
        raise SystemExit(f"only {len(paths)} HTML files under {html_dir} (asked for {n})")
    chosen = [paths[i * len(paths) // n] for i in range(n)]
    pages = [(p.relative_to(html_dir).as_posix(), p.read_text(encoding="utf-8", errors="replace")) for p in chosen]
    out.mkdir(parents=True, exist_ok=True)
    handles = [open(out / f"part_{k}.jsonl", "w", encoding="utf-8") for k in range(files)]
    for i, (pid, page) in enumerate(pages):
        handles[i * files // n].write(json.dumps({"text": page, "id": pid, "domain": "web"}) + "\n")
    for h in handles:
        h.close()
    return pages, sum(len(p.encode()) for _, p in pages)
