"""WARC and WET files (Common Crawl's capture and extracted-text formats), read with FastWARC
(Bevendorff et al. 2021, part of resiliparse).

Document-bearing records become Documents of domain ``web`` with ``meta.url`` (WARC-Target-URI),
``meta.date`` (WARC-Date as ISO 8601, UTC written ``Z``) and ``meta.warc_record_id``:

- ``response`` records (HTTP captures): an HTML payload gets ``meta.format = "html"`` so the extract
  step turns it into main text; ``text/plain`` is kept as text. The charset comes from the HTTP header,
  else from resiliparse's detector (which reads ``<meta charset>`` and guesses from the bytes).
- ``conversion`` records (WET): the extracted plain text as it is.
- ``resource`` records: like responses, with the WARC Content-Type.

Other record types (``warcinfo``, ``request``, ``metadata``, ``revisit``) carry no document and are
skipped. Captures that cannot become a document are quarantined with a reason, never lost: HTTP status
other than 200, a content type that is not text (PDF, images ...), a payload over the size limit (not
read into memory), an empty payload, a record cut short, a corrupt stream, and a file with no WARC record.
A WARC file is one shard (Common Crawl's files are all about 1 GB, so a crawl spreads evenly over workers).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from pretrain.data.record import Document

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)


def is_warc(name: str) -> bool:
    return name.lower().endswith(WARC_SUFFIXES)


def _iso(record) -> str:
    dt = record.record_date
    if dt is None:
        return str(record.headers.get("WARC-Date", ""))
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat() + "Z"


def _decode(payload: bytes, charset: str | None) -> str:
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return bytes_to_str(payload, charset or detect_encoding(payload))


def read_warc_records(path, source: str, max_bytes: int, quarantine) -> Iterator:
    """Documents of one WARC/WET file; unusable captures go to ``quarantine(source, reason, snippet,
    payload)``, whose return value is yielded in their place (so the caller's stream keeps every capture).
    ``payload`` (pretrain.data.curate.io.payload) holds the capture's content block as read (the HTTP body of
    a response), or for one over ``max_bytes`` a reference: the file, the record's offset in the stream
    (``warc_offset``; a gzip member start in a .warc.gz), its length and first bytes."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from pretrain.data.curate.io import payload as pl
    from pretrain.data.curate.io.storage import open_binary

    wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    seen_any = False
    pos = 0
    with open_binary(path) as f:
        try:
            records = ArchiveIterator(f, record_types=wanted | WarcRecordType.warcinfo | WarcRecordType.request
                                      | WarcRecordType.metadata | WarcRecordType.revisit, parse_http=True)
            for rec in records:
                seen_any = True
                pos = rec.stream_pos
                if not rec.record_type & wanted:
                    continue
                yield from _one(rec, f"{source}@{pos}", max_bytes, quarantine, str(path))
        except Exception as exc:  # noqa: BLE001 - fastwarc and the compressors raise several types
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            if seen_any:
                yield quarantine(f"{source}@{pos}", f"corrupt WARC stream after this offset: {why}", "",
                                 _tail(path, pos))
            else:
                yield quarantine(source, f"not a WARC file ({why})", "", pl.whole_file(path))
            return
    if not seen_any:
        yield quarantine(source, "not a WARC file (no WARC record found)", "", pl.whole_file(path))


def _tail(path, pos: int) -> dict | None:
    """Where a stream stops parsing: the file's bytes from that record's offset on (length and prefix)."""
    from pretrain.data.curate.io import payload as pl
    from pretrain.data.curate.io.lines import PREFIX_BYTES
    from pretrain.data.curate.io.storage import open_binary

    try:
        with open_binary(path) as f:
            f.seek(pos)
            head = f.read(PREFIX_BYTES)
        return pl.reference(str(path), pos, max(0, int(path.stat().st_size) - pos), head)
    except OSError:
        return None


def _one(rec, src: str, max_bytes: int, quarantine, file: str) -> Iterator[Document]:
    from fastwarc.warc import WarcRecordType

    from pretrain.data.curate.io import payload as pl
    from pretrain.data.curate.io.lines import PREFIX_BYTES

    def bad(reason: str, body: bytes | None = None):
        """A capture that is no document, with its content block (read here unless given)."""
        if body is None:
            if rec.content_length > max_bytes:  # never held whole: where it is, and its first bytes
                head = rec.reader.read(PREFIX_BYTES)
                return quarantine(src, reason, url, pl.warc_reference(file, rec.stream_pos, rec.content_length, head))
            body = rec.reader.read()
        return quarantine(src, reason, url, pl.inline(body))

    url = str(rec.headers.get("WARC-Target-URI", ""))
    meta = {"url": url, "date": _iso(rec), "warc_record_id": str(rec.record_id or "")}
    http = rec.http_headers if rec.record_type == WarcRecordType.response else None
    if rec.record_type == WarcRecordType.response:
        if http is None:
            yield bad("WARC response without HTTP headers")
            return
        if http.status_code != 200:
            yield bad(f"HTTP status {http.status_code}")
            return
        ctype, charset = (rec.http_content_type or "").lower(), rec.http_charset
    elif rec.record_type == WarcRecordType.conversion:
        ctype, charset = "text/plain", "utf-8"
    else:
        ctype = str(rec.headers.get("Content-Type", "")).split(";")[0].strip().lower()
        charset = None
    if not ctype.startswith(HTML_TYPES + TEXT_TYPES):
        yield bad(f"content type {ctype or 'missing'} is not HTML or text")
        return
    if rec.content_length > max_bytes:
        yield bad(f"record payload too large ({rec.content_length} bytes > {max_bytes})")
        return
    payload = rec.reader.read()
    if len(payload) < rec.content_length:
        yield bad(f"truncated WARC record ({len(payload)} of {rec.content_length} bytes)", payload)
        return
    if not payload.strip():
        yield bad("empty WARC payload", payload)
        return
    text = _decode(payload, charset)
    if "\x00" in text:
        yield bad("NUL byte in WARC payload", payload)
        return
    if ctype.startswith(HTML_TYPES):
        meta["format"] = "html"
    yield Document(text=text, source=src, domain="web", meta=meta)


__all__ = ["WARC_SUFFIXES", "is_warc", "read_warc_records"]
