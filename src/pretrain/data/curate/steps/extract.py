"""HTML extraction step: the main text of a page (see pretrain.data.curate.extract)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.record import Document


@dataclass
class ExtractOptions:
    html_domains: list[str] = field(default_factory=lambda: ["web"])
    """Besides files read as HTML (meta.format = 'html'), documents of these domains that look like HTML
    are extracted too (e.g. JSONL of crawled pages)."""


@register("extract")
class Extract(Step):
    """HTML -> main text (trafilatura); a page with no text left is removed as 'no_text'."""

    Options = ExtractOptions

    def __call__(self, doc: Document) -> Verdict | None:
        from pretrain.data.curate.extract import html_to_text, looks_like_html

        is_html = doc.meta.get("format") == "html" or (doc.domain in self.o.html_domains and looks_like_html(doc.text))
        if not is_html:
            return None
        text = html_to_text(doc.text)
        doc.meta["format"] = "text"
        doc.meta["extracted_from"] = "html"
        self.count("extracted")
        if not text.strip():
            return "no_text", "no main text found in the HTML"
        doc.text = text
        return None

