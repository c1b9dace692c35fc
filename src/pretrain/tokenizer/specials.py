"""Special tokens and the byte <-> character table of byte-level BPE.

Byte-level BPE (GPT-2, Radford et al. 2019) runs BPE over bytes shown as 256 printable characters, so
every byte sequence has a spelling and there is no unknown token. The table below is that standard
mapping (printable Latin-1 bytes map to themselves, the rest to U+0100 onwards); we need it to encode
invalid UTF-8 bytes directly ("byte fallback") and to decode ids back to exact bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
NAMED_SPECIALS = (BOS, EOS, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)


HF_ROLES = ("bos_token", "eos_token", "pad_token")


def hf_roles(directory: str | Path) -> dict[str, str]:
    """{bos_token, eos_token, pad_token: text} from the Hugging Face files beside a tokenizer.json
    (``tokenizer_config.json``, ``special_tokens_map.json``), for a model's own tokenizer brought in by
    ``pretrain import hf``; roles a file does not name are left out, no files give {}."""
    roles: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins where both say
        path = Path(directory) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        for role in HF_ROLES:
            value = data.get(role) if isinstance(data, dict) else None
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                roles[role] = value
    return roles


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
