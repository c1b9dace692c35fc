"""Domain blocklists: which hosts a crawl must not contribute (Llama 3's domain-level safety filtering).

The file format is the UT1 blacklist's ``domains`` files (Université Toulouse 1): one domain per line;
a line also matches every subdomain (``example.com`` blocks ``www.example.com`` and
``a.b.example.com``, not ``badexample.com``). Blank lines and ``#`` comments are ignored, a leading
``*.`` or ``.`` is dropped, a line that is a URL counts as its host, IP addresses match themselves, and
internationalised names are compared in their IDNA (punycode) form. Many files can be concatenated.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def _canon(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:  # a label too long or otherwise not IDNA-encodable: compare as written
        return host


def parse_domains(lines) -> set[str]:
    """The set of canonical domains in blocklist lines."""
    out: set[str] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "/" in line:
            line = urlsplit(line if "://" in line else f"//{line}").hostname or ""
        line = line.removeprefix("*.").lstrip(".")
        if line:
            out.add(_canon(line))
    return out


def load_blocklist(path: str) -> set[str]:
    """Domains of a blocklist file (a local path or an fsspec URL)."""
    from pretrain.data.curate.io.storage import as_path

    with as_path(path).open("rb") as f:
        return parse_domains(f.read().decode("utf-8", "replace").splitlines())


def host_of(url: str) -> str:
    """The canonical host of a URL ('' when it has none)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""
    return _canon(host) if host else ""


def blocked_by(host: str, domains: set[str]) -> str | None:
    """The blocklisted domain that ``host`` is or is under, or None."""
    labels = host.split(".")
    for i in range(len(labels)):
        cand = ".".join(labels[i:])
        if cand in domains:
            return cand
    return None


__all__ = ["blocked_by", "host_of", "load_blocklist", "parse_domains"]
