"""HTML extraction step: the main text of a page (see pretrain.data.curate.io.extract)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.record import Document


@dataclass
class ExtractOptions:
    html_domains: list[str] = field(default_factory=lambda: ["web"])
    """Besides files read as HTML (meta.format = 'html'), documents of these domains that look like HTML
    are extracted too (e.g. JSONL of crawled pages)."""
    extractor: str = "trafilatura"
    """'trafilatura' or 'resiliparse' (several times faster; see docs/performance.md for how their texts
    compare)."""
    timeout: float = 5.0
    """Seconds one page may take; a page over it is removed with reason 'extract_timeout' (kept in
    removed/ as HTML). 0 = no limit."""


@register("extract")
class Extract(Step):
    """HTML -> main text (trafilatura or resiliparse); a page with no text left is removed as 'no_text',
    one that takes longer than `timeout` as 'extract_timeout'."""

    Options = ExtractOptions

    def validate(self) -> None:
        from pretrain.data.curate.io.extract import EXTRACTORS

        check(self.o.extractor in EXTRACTORS, "extractor", f"must be one of {', '.join(EXTRACTORS)} "
              f"(got {self.o.extractor!r})")
        check(self.o.timeout >= 0, "timeout", f"must be >= 0 seconds (got {self.o.timeout})")

    def setup(self) -> None:
        from pretrain.data.curate.io.extract import html_to_text

        # imports and first-call initialisation here, so they do not count against the first page's time
        html_to_text("<html><body><p>warm up</p></body></html>", self.o.extractor)

    def __call__(self, doc: Document) -> Verdict | None:
        from pretrain.data.curate.io.extract import ExtractTimeout, html_to_text, looks_like_html, time_limit

        is_html = doc.meta.get("format") == "html" or (doc.domain in self.o.html_domains and looks_like_html(doc.text))
        if not is_html:
            return None
        try:
            with time_limit(self.o.timeout):
                text = html_to_text(doc.text, self.o.extractor)
        except ExtractTimeout as exc:
            self.count("timeouts")
            return "extract_timeout", str(exc)
        doc.meta["format"] = "text"
        doc.meta["extracted_from"] = "html"
        self.count("extracted")
        if not text.strip():
            return "no_text", "no main text found in the HTML"
        doc.text = text
        return None

