"""HTML -> main text with trafilatura (Barbaresi 2021), keeping image alt text, code and math.

trafilatura drops boilerplate (navigation, footers, cookie banners) and keeps ``<pre>``/``<code>``
blocks. MathML and MathJax are turned into ``$TeX$`` spans before extraction (trafilatura would drop
them), and image references ``![alt](src)`` become their alt text. When trafilatura finds no main
content (very short pages), its plain-text baseline is used instead.
"""

from __future__ import annotations

import re

_IMG = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


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


def html_to_text(html: str) -> str:
    """Main text of an HTML page ('' when there is none)."""
    try:
        import trafilatura
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("HTML extraction needs trafilatura: pip install trafilatura lxml_html_clean") from exc
    html = _math_to_text(html)
    text = trafilatura.extract(html, include_images=True, include_tables=True, include_comments=False,
                               favor_recall=True, deduplicate=False)
    if not text:
        text = trafilatura.html2txt(html) or ""
    return _IMG.sub(lambda m: m.group(1), text)


def looks_like_html(text: str) -> bool:
    head = text[:2000].lstrip().lower()
    return head.startswith(("<!doctype html", "<html", "<?xml")) or ("<body" in head and "</" in text)
