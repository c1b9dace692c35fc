"""HTML (``.html``, ``.htm``, ``.xhtml``): one document per file, marked ``meta.format = 'html'`` so the
extraction step turns it into text."""

from __future__ import annotations

from pretrain.data.curate.io.formats.base import register_format
from pretrain.data.curate.io.formats.text import Text


@register_format("html")
class Html(Text):
    suffixes = (".html", ".htm", ".xhtml")
    fallback = False
    meta = {"format": "html"}
