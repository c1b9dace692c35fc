"""HTML -> main text, keeping image alt text, code and math: trafilatura (Barbaresi 2021) or
resiliparse (Bevendorff et al. 2018; its C++ DOM and main-content rules, several times faster).

Both drop boilerplate (navigation, footers, cookie banners) and keep ``<pre>``/``<code>`` blocks.
MathML and MathJax are turned into ``$TeX$`` spans before extraction (both would drop them).
trafilatura writes images and tables as Markdown; that syntax is turned back into text here: an image
``![alt](src)`` becomes its alt text (escaped brackets and parentheses in ``src`` included), a table row
``| a | b |`` becomes its cells separated by tabs and the ``|---|`` rule line goes. When no main
content is found (very short pages), the extractor's whole-page text is used instead.

Every call can be given a time limit (:func:`time_limit`): a pathological page raises
:class:`ExtractTimeout` instead of stalling its worker.
"""

from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager

EXTRACTORS = ("trafilatura", "resiliparse")

# ![alt](target "title"): alt may hold escaped brackets; target is <...> or has balanced parentheses
_IMG = re.compile(r"!\[((?:\\.|[^\]\\])*)\]\((?:<[^>]*>|(?:[^()\s]|\([^()]*\))*)(?:\s+\"[^\"]*\")?\)")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")
_TABLE_RULE = re.compile(r"^\s*\|(?:\s*:?-{2,}:?\s*\|)+\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


class ExtractTimeout(BaseException):
    """Extraction of one page ran past its time limit. A BaseException, as KeyboardInterrupt is: the alarm
    lands wherever the extractor happens to be, and trafilatura's own ``except Exception`` blocks would
    otherwise swallow it and carry on (the page then came out as if no limit had been set)."""


@contextmanager
def time_limit(seconds: float):
    """Raise ExtractTimeout in the block after ``seconds`` (wall clock; 0 = no limit). Uses SIGALRM, so it
    works in a process's main thread (pool workers and Ray workers run tasks there); elsewhere (or on
    a platform without SIGALRM) the block runs unlimited."""
    usable = seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def fire(signum, frame):
        raise ExtractTimeout(f"HTML extraction took longer than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _alt(m: re.Match) -> str:
    return _MD_ESCAPE.sub(r"\1", m.group(1))


def markdown_to_text(text: str) -> str:
    """Turn trafilatura's Markdown images and tables back into plain text (see the module docstring)."""
    if "![" in text:
        text = _IMG.sub(_alt, text)
    if "|" not in text:
        return text
    out = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("|") and s.endswith("|") and len(s) > 1:
            if _TABLE_RULE.match(s):
                continue
            cells = [_MD_ESCAPE.sub(r"\1", c.strip()) for c in _CELL_SPLIT.split(s[1:-1])]
            line = "\t".join(c for c in cells)
        out.append(line)
    return "\n".join(out)


def _math_to_text(html: str) -> str:
    """Replace <math> elements and MathJax scripts with a span holding their TeX (or text) in $...$."""
    if "<math" not in html and "math/tex" not in html:
        return html
    import lxml.html

    try:
        root = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return html
    for el in list(root.iter("math", "{http://www.w3.org/1998/Math/MathML}math", "script")):
        if el.tag == "script" and "math/tex" not in (el.get("type") or ""):
            continue
        tex = el.get("alttext")
        if not tex:
            ann = [a for a in el.iter() if a.tag.endswith("annotation") and "tex" in (a.get("encoding") or "")]
            tex = ann[0].text_content() if ann else " ".join(el.text_content().split())
        span = lxml.html.Element("span")
        span.text = f"${tex.strip()}$"
        span.tail = el.tail
        parent = el.getparent()
        if parent is not None:
            parent.replace(el, span)
    return lxml.html.tostring(root, encoding="unicode")


def _trafilatura(html: str) -> str:
    try:
        import trafilatura
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("HTML extraction needs trafilatura: pip install trafilatura lxml_html_clean") from exc
    text = trafilatura.extract(html, include_images=True, include_tables=True, include_comments=False,
                               favor_recall=True, deduplicate=False)
    if not text:
        text = trafilatura.html2txt(html) or ""
    return markdown_to_text(text)


def _resiliparse(html: str) -> str:
    try:
        from resiliparse.extract.html2text import extract_plain_text
    except ImportError as exc:
        raise ImportError("extract.extractor = 'resiliparse' needs resiliparse: pip install 'pretrain[web]'") from exc
    kw = {"alt_texts": True, "preserve_formatting": True, "list_bullets": True, "links": False,
          "noscript": False, "comments": False}
    text = extract_plain_text(html, main_content=True, **kw)
    if not text.strip():
        text = extract_plain_text(html, main_content=False, **kw)
    return text


def html_to_text(html: str, extractor: str = "trafilatura") -> str:
    """Main text of an HTML page ('' when there is none) with the named extractor."""
    html = _math_to_text(html)
    return _resiliparse(html) if extractor == "resiliparse" else _trafilatura(html)


def looks_like_html(text: str) -> bool:
    head = text[:2000].lstrip().lower()
    return head.startswith(("<!doctype html", "<html", "<?xml")) or ("<body" in head and "</" in text)
