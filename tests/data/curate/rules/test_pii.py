"""PII redaction: each kind, its placeholder and count, and the look-alikes that must be left alone."""

from __future__ import annotations

import pytest

from pretrain.data.curate.rules.pii import PIIOptions, luhn_ok, redact_pii

OPTS = PIIOptions()


@pytest.mark.parametrize("text,kind", [
    ("write to jane.doe+news@mail.example.org today", "email"),
    ("call +1 415 555 0132 now", "phone"),
    ("call (030) 1234 5678 now", "phone"),
    ("call 06.12.34.56.78 now", "phone"),
    ("server at 8.8.8.8 answered", "ip"),
    ("v6 host 2606:4700:4700::1111 answered", "ip"),
    ("card 4111 1111 1111 1111 expired", "credit_card"),
    ("card 5500-0000-0000-0004 expired", "credit_card"),
])
def test_redacts_each_kind(text, kind):
    out, counts = redact_pii(text, OPTS)
    assert counts == {kind: 1}
    assert OPTS.placeholders[kind] in out
    assert out.split()[0] == text.split()[0] and out.split()[-1] == text.split()[-1]


@pytest.mark.parametrize("text", [
    "version 3.11.7 of the interpreter",           # not an IP (3 dots but 4 parts needed)
    "localhost is 127.0.0.1 and lan 192.168.1.20",  # private / loopback kept by default
    "the number 4111 1111 1111 1112 fails Luhn",    # card-like but invalid checksum
    "in 1999 there were 2000 people",              # plain numbers
    "decorator @property and x@y",                 # no domain: not an e-mail
    "timestamp 12:30:45 and ratio 3:4",            # not IPv6
    "documentation address 192.0.2.1 is reserved",  # RFC 5737 documentation range
])
def test_leaves_look_alikes(text):
    out, counts = redact_pii(text, OPTS)
    assert counts == {} and out == text


def test_private_ips_can_be_redacted_and_counts_add_up():
    o = PIIOptions(keep_private_ips=False, placeholders={**OPTS.placeholders, "ip": "[IP]"})
    out, counts = redact_pii("a 10.0.0.1 b 127.0.0.1 c x@example.com d y@example.com", o)
    assert counts == {"ip": 2, "email": 2}
    assert out == "a [IP] b [IP] c <EMAIL> d <EMAIL>"


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


def test_types_subset():
    out, counts = redact_pii("x@example.com 8.8.8.8", PIIOptions(types=["ip"]))
    assert counts == {"ip": 1} and "x@example.com" in out
