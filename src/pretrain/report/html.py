"""HTML building blocks for the report: escaping, number formatting, tables, cards, images, the page.

Plain HTML and CSS only (no JavaScript): the page must open offline in any browser and survive being
mailed around, so images are embedded as base64 PNG by default (or written beside the page).
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.report.metrics import is_number


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_num(value: Any, digits: int = 4) -> str:
    """Compact, readable numbers: 1.23M tokens, 0.000300, 3.1416; non-numbers pass through escaped."""
    if not is_number(value):
        return esc(value)
    # Counts (ints) read best as 1.2M; large floats (FLOP/s, bytes/s) in scientific notation.
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        v = int(value)
        if abs(v) >= 10_000_000_000:
            return f"{v / 1e9:.1f}B"
        if abs(v) >= 10_000_000:
            return f"{v / 1e6:.1f}M"
        return f"{v:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.{max(digits - 1, 1)}e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s"
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def table(headers: list[str], rows: list[list[Any]], numeric: bool = True, cls: str = "") -> str:
    """An HTML table; numeric cells are formatted and right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for v in row:
            if numeric and is_number(v):
                cells.append(f'<td class="num">{fmt_num(v)}</td>')
            elif isinstance(v, Raw):
                cells.append(f"<td>{v.html}</td>")
            else:
                cells.append(f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


@dataclass
class Raw:
    """Already-built HTML for a table cell."""

    html: str


def flatten(value: Any, prefix: str = "", limit: int = 200) -> list[tuple[str, Any]]:
    """Nested dicts/lists -> (dotted key, scalar) pairs, at most ``limit`` of them."""
    out: list[tuple[str, Any]] = []

    def walk(v: Any, key: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(v, dict):
            for k, sub in v.items():
                walk(sub, f"{key}.{k}" if key else str(k))
        elif isinstance(v, list) and v and all(isinstance(x, (dict, list)) for x in v):
            for i, sub in enumerate(v[:20]):
                walk(sub, f"{key}[{i}]")
        else:
            if isinstance(v, list):
                v = ", ".join(str(x) for x in v[:20]) + (" ..." if len(v) > 20 else "")
            out.append((key, v))

    walk(value, prefix)
    return out


def kv_table(value: Any, limit: int = 200) -> str:
    pairs = flatten(value, limit=limit)
    return table(["field", "value"], [[k, v] for k, v in pairs], cls="kv")


def cards(items: list[tuple[str, str, str]]) -> str:
    """Headline figures: (label, value html, note)."""
    parts = [
        f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{value}</div>'
        f'<div class="note">{esc(note)}</div></div>'
        for label, value, note in items
    ]
    return f'<div class="cards">{"".join(parts)}</div>'


def note(text: str) -> str:
    return f'<p class="muted">{esc(text)}</p>'


def pre(text: str, limit: int = 4000) -> str:
    if len(text) > limit:
        text = text[:limit] + f"\n... ({len(text) - limit} more characters)"
    return f"<pre>{esc(text)}</pre>"


def details(summary: str, body: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>"


class ImageSink:
    """Turns PNG bytes into <img> tags: embedded as data URIs, or written beside the page."""

    def __init__(self, out_dir: Path, embed: bool = True):
        self.out_dir = out_dir
        self.embed = embed
        self.names: list[str] = []

    def img(self, name: str, png: bytes, alt: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        if not name.endswith(".png"):
            name += ".png"
        base, n = name[:-4], 1
        while name in self.names:  # unique file names when two plots share a title
            n += 1
            name = f"{base}_{n}.png"
        self.names.append(name)
        if self.embed:
            src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        else:
            (self.out_dir / name).write_bytes(png)
            src = name
        return f'<figure><img src="{src}" alt="{esc(alt)}" title="{esc(alt)}"></figure>'

    def file(self, path: Path, alt: str) -> str:
        """An existing PNG from the run directory (e.g. eval/needle.png)."""
        return self.img(path.stem, path.read_bytes(), alt)


@dataclass
class Section:
    id: str
    title: str
    body: str
    subtitle: str = ""
    images: int = 0
    """Images in the section (tests check the count)."""


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


CSS = """
:root { --fg:#1d2330; --muted:#66707f; --line:#e3e6ec; --bg:#f6f7f9; --card:#fff; --accent:#2563eb; }
* { box-sizing:border-box; }
body { margin:0; font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#111827; color:#f9fafb; padding:22px 32px 16px; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header .sub { color:#cbd5e1; font-size:14px; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
      padding:8px 32px; display:flex; flex-wrap:wrap; gap:4px 14px; font-size:13.5px; }
nav a { color:var(--accent); text-decoration:none; white-space:nowrap; }
main { max-width:1180px; margin:0 auto; padding:12px 32px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 22px;
          margin:18px 0; }
section h2 { margin:0 0 4px; font-size:19px; }
section h3 { margin:18px 0 6px; font-size:15.5px; }
.muted, .sectionsub { color:var(--muted); font-size:13.5px; margin:2px 0 10px; }
figure { margin:10px 0; text-align:center; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
table { border-collapse:collapse; margin:8px 0 12px; font-size:13.5px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { background:#f1f3f7; font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
table.kv td:first-child { color:var(--muted); font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12.5px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:10px; margin:10px 0; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 12px; background:#fbfcfe; }
.card .label { color:var(--muted); font-size:12.5px; text-transform:uppercase; letter-spacing:.03em; }
.card .value { font-size:21px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .note { color:var(--muted); font-size:12px; }
pre { background:#f3f4f6; border-radius:6px; padding:10px 12px; overflow:auto; font-size:12.5px;
      white-space:pre-wrap; word-break:break-word; max-height:420px; }
details { margin:8px 0; }
summary { cursor:pointer; color:var(--accent); }
.sample { border-left:3px solid var(--accent); padding:4px 12px; margin:10px 0; }
.sample .prompt { font-weight:600; white-space:pre-wrap; }
.sample .completion { white-space:pre-wrap; font-family:ui-monospace,Menlo,Consolas,monospace; font-size:13px; }
.doctext { white-space:pre-wrap; font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12px;
           max-height:9em; overflow:auto; }
.warn { background:#fff7ed; border-color:#fdba74; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:10px; }
@media (max-width:900px) { .grid2 { grid-template-columns:1fr; } }
footer { color:var(--muted); font-size:12.5px; text-align:center; padding:10px; }
"""


def render_page(page: Page) -> str:
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in page.sections)
    body = []
    for s in page.sections:
        sub = f'<p class="sectionsub">{esc(s.subtitle)}</p>' if s.subtitle else ""
        body.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{sub}{s.body}</section>')
    if page.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in page.warnings)
        body.append(f'<section id="warnings" class="warn"><h2>Skipped input</h2>'
                    f'<p class="muted">These inputs could not be used; the rest of the report is '
                    f"unaffected.</p><ul>{items}</ul></section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(page.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(page.title)}</h1><div class=\"sub\">{esc(page.subtitle)}</div></header>"
        f"<nav>{nav}</nav><main>{''.join(body)}</main>"
        "<footer>Generated by <code>pretrain report</code>. Self-contained: no network needed.</footer>"
        "</body></html>\n"
    )
