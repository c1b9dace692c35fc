"""Any other file (source code, Markdown, plain text): one document per file, read whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pretrain.data.curate.io import payload as pl
from pretrain.data.curate.io.formats.base import InputFormat, Quarantined, register_format, snippet
from pretrain.data.curate.io.inputs import input_problem
from pretrain.data.curate.io.lines import PREFIX_BYTES, read_head
from pretrain.data.record import Document


def _binary(raw: bytes) -> bool:
    """NUL bytes, or over 30% control characters in the first 8 KB, mean a binary file."""
    head = raw[:8192]
    if b"\x00" in head:
        return True
    ctrl = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return bool(head) and ctrl / len(head) > 0.3


@register_format("text")
class Text(InputFormat):
    fallback = True
    meta: ClassVar[dict[str, Any]] = {}  # what every document of this format carries in meta

    def read_document(self, path: Path, domain: str, max_bytes: int) -> Document | Quarantined:
        src = f"{path}"
        if problem := input_problem(path):
            return Quarantined(src, problem, domain)
        try:
            raw, size = read_head(path, max_bytes)
        except FileNotFoundError:
            return Quarantined(src, "vanished (no such file)", domain)
        except OSError as exc:
            return Quarantined(src, f"unreadable: {(exc.strerror or str(exc)).lower()}", domain)
        if size > max_bytes:
            return Quarantined(src, f"file too large ({size} bytes > {max_bytes})", domain,
                               payload=pl.reference(src, 0, size, raw[:PREFIX_BYTES]))
        kept = pl.inline(raw)
        if not raw.strip():
            return Quarantined(src, "empty file", domain, payload=kept)
        if _binary(raw):
            return Quarantined(src, "binary file", domain, snippet(raw, 100), kept)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Quarantined(src, f"invalid UTF-8 at byte {exc.start}", domain, snippet(raw), kept)
        if text.startswith("\ufeff"):
            text = text[1:]
        return Document(text=text, source=src, domain=domain, meta=dict(self.meta))
