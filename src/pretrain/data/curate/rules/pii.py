"""PII redaction: e-mail addresses, phone numbers, IP addresses and payment-card numbers.

Matches are replaced by a placeholder per type and counted. Card numbers must pass the Luhn checksum
(ISO/IEC 7812) so that long ordinary numbers are left alone; IP addresses must parse as IPv4/IPv6, and
private, loopback and documentation ranges can be kept (they identify nobody: 127.0.0.1, 192.168.x.x).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

# The patterns consume their first character before checking what precedes it ("\d(?<![\w-]\d)" instead
# of "(?<![\w-])\d"): a pattern that starts with a look-behind makes Python's regex engine try every
# position, while one that starts with a character class lets it skip ahead. Measured 3-5x faster.
EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
EMAIL_LOCAL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}$")
# Groups of digits separated by space, dot or dash: two or more groups after a +country code or a
# parenthesised area code, three or more without; 9 to 15 digits in all (E.164 allows at most 15).
PHONE_START = re.compile(r"[+(\d](?<![\w+.-][+(\d])")
PHONE = re.compile(r"(?:(?:\+\d{1,3}[ .-]?)?\(\d{1,4}\)[ .-]?\d{2,4}(?:[ .-]\d{2,4}){1,4}"
                   r"|\+\d{1,3}[ .-]?\d{2,4}(?:[ .-]\d{2,4}){1,4}|\d{2,4}(?:[ .-]\d{2,4}){2,4})(?![\w.-]?\d)")
IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.]*\d)")
IPV6 = re.compile(r"[0-9A-Fa-f](?<![\w:][0-9A-Fa-f])[0-9A-Fa-f]{0,3}:(?:[0-9A-Fa-f]{0,4}:){1,6}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"\d(?<![\w-]\d)(?:[ -]?\d){12,18}(?![\w-])")

DEFAULT_PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "credit_card": "<CREDIT_CARD>"}


@dataclass
class PIIOptions:
    types: list[str] = field(default_factory=lambda: ["email", "phone", "ip", "credit_card"])
    """Which kinds of PII to redact: email, phone, ip, credit_card."""
    placeholders: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    """Replacement text per kind."""
    keep_private_ips: bool = True
    """Leave private, loopback, link-local and documentation addresses alone."""


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum: double every second digit from the right, sum digits, total divisible by 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _public_ip(s: str, keep_private: bool) -> bool:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return False
    if not keep_private:
        return True
    doc_nets = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("198.51.100.0/24"),
                ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32"))
    if any(ip in n for n in doc_nets if n.version == ip.version):
        return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast
                or ip.is_reserved)


def _email_spans(text: str):
    for m in EMAIL_DOMAIN.finditer(text):
        local = EMAIL_LOCAL.search(text, max(0, m.start() - 64), m.start())
        if local:
            yield local.start(), m.end()


def _phone_spans(text: str):
    pos = 0
    while m := PHONE_START.search(text, pos):
        b = PHONE.match(text, m.start())
        if b:
            yield b.start(), b.end()
            pos = b.end()
        else:
            pos = m.start() + 1


def _regex_spans(pattern: re.Pattern):
    return lambda text: ((m.start(), m.end()) for m in pattern.finditer(text))


def redact_pii(text: str, o: PIIOptions) -> tuple[str, dict[str, int]]:
    """Returns (redacted text, count per kind). Order matters: cards before phones (both are digit runs)."""
    counts: dict[str, int] = {}

    def sub(kind: str, spans, text: str, accept=lambda s: True) -> str:
        pieces, last = [], 0
        for a, b in spans(text):
            if a < last or not accept(text[a:b]):
                continue
            pieces += [text[last:a], o.placeholders.get(kind, DEFAULT_PLACEHOLDERS[kind])]
            last = b
            counts[kind] = counts.get(kind, 0) + 1
        return "".join(pieces) + text[last:] if pieces else text

    if "email" in o.types and "@" in text:
        text = sub("email", _email_spans, text)
    if "credit_card" in o.types:
        text = sub("credit_card", _regex_spans(CARD), text, lambda s: luhn_ok(re.sub(r"\D", "", s)))
    if "ip" in o.types:
        text = sub("ip", _regex_spans(IPV4), text, lambda s: _public_ip(s, o.keep_private_ips))
        if "::" in text or text.count(":") >= 2:
            text = sub("ip", _regex_spans(IPV6), text, lambda s: s.count(":") >= 2 and _public_ip(s, o.keep_private_ips))
    if "phone" in o.types:
        text = sub("phone", _phone_spans, text, lambda s: 9 <= sum(c.isdigit() for c in s) <= 15)
    return text, counts
