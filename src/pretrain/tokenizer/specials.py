"""Special tokens and the byte <-> character table of byte-level BPE.

Byte-level BPE (GPT-2, Radford et al. 2019) runs BPE over bytes shown as 256 printable characters, so
every byte sequence has a spelling and there is no unknown token. The table below is that standard
mapping (printable Latin-1 bytes map to themselves, the rest to U+0100 onwards); we need it to encode
invalid UTF-8 bytes directly ("byte fallback") and to decode ids back to exact bytes.
"""

from __future__ import annotations

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
NAMED_SPECIALS = (BOS, EOS, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)


def reserved(i: int) -> str:
    return f"<|reserved_{i}|>"


def special_tokens(n_reserved: int) -> list[str]:
    """All special tokens in id order: the named ones first, then the reserved slots."""
    return [*NAMED_SPECIALS, *(reserved(i) for i in range(n_reserved))]


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte -> printable character table used by the ByteLevel pre-tokenizer."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table
