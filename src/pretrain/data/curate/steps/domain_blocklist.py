"""The ``domain_blocklist`` step: documents whose ``meta.url`` host is on a blocklist are removed.

Added at the front of the pipeline by ``data.curate.blocklist = FILE`` (or listed as a step with
``file`` and/or ``domains``). Documents without ``meta.url`` pass and are counted as ``no_url``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules.blocklist import blocked_by, host_of, load_blocklist, parse_domains
from pretrain.data.record import Document


@dataclass
class BlocklistOptions:
    file: str = ""
    """Blocklist file (UT1 format: one domain per line, subdomains included); a local path or URL."""
    domains: list[str] = field(default_factory=list)
    """Extra domains to block, same rules as the file's lines."""


@register("domain_blocklist")
class DomainBlocklist(Step):
    Options = BlocklistOptions

    def validate(self) -> None:
        from pathlib import Path

        from pretrain.data.curate.io.storage import is_url

        check(bool(self.o.file or self.o.domains), "file", "give a blocklist `file` or `domains`")
        check(not self.o.file or is_url(self.o.file) or Path(self.o.file).is_file(), "file",
              f"blocklist file not found: {self.o.file}")

    def setup(self) -> None:
        self.blocked = parse_domains(self.o.domains) | (load_blocklist(self.o.file) if self.o.file else set())

    def __call__(self, doc: Document) -> Verdict | None:
        url = doc.meta.get("url")
        if not isinstance(url, str) or not url:
            self.count("no_url")
            return None
        host = host_of(url)
        hit = blocked_by(host, self.blocked) if host else None
        if hit is None:
            return None
        return "blocklisted_domain", f"host {host} is on the blocklist (as {hit})"
