"""URL normalisation and capture dates, for URL-level dedup of crawled pages.

Two captures are of the same page when their normalised URLs are equal. Normalisation (close to what
crawlers such as Common Crawl's SURT form do): scheme dropped (http and https are one page), host
lower-cased with a leading ``www.`` and the default port removed, IDNA host kept as given, empty path
-> ``/``, the fragment dropped, tracking parameters (``utm_*``, ``fbclid``, ``gclid``, ``mc_*``)
removed and the remaining query parameters sorted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

_TRACKING_PREFIXES = ("utm_", "mc_")
_TRACKING = {"fbclid", "gclid", "dclid", "msclkid", "yclid", "_ga", "igshid"}
UNDATED = -(1 << 62)  # sorts before every real date: an undated capture is treated as the oldest


def normalize_url(url: str) -> str:
    """A canonical form of ``url`` (see the module docstring); raises ValueError on a URL with no host."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError(f"URL without a host: {url!r}")
    if host.startswith("www."):
        host = host[4:]
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and not (port == 80 and parts.scheme == "http") and not (port == 443 and parts.scheme == "https"):
        host = f"{host}:{port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if k.lower() not in _TRACKING and not k.lower().startswith(_TRACKING_PREFIXES))
    path = parts.path or "/"
    return host + path + (f"?{urlencode(query)}" if query else "")


def capture_time(value: object) -> int:
    """Seconds since the epoch (UTC) of an ISO 8601 date (``2024-03-01T12:00:00Z``); UNDATED if absent
    or unreadable. A date without a time zone is read as UTC."""
    if not isinstance(value, str) or not value:
        return UNDATED
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return UNDATED
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())
