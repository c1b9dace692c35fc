"""A thin wrapper around a `tokenizers.Tokenizer` with the ids and guarantees the pipeline relies on.

- Plain text never produces a special token: ``encode_special_tokens`` is switched on, so the text
  ``"<|eos|>"`` is spelled with ordinary tokens (a document cannot forge a document boundary).
- Any byte string round-trips exactly through :meth:`Tokenizer.encode_bytes` /
  :meth:`Tokenizer.decode_bytes`: valid UTF-8 runs go through BPE, invalid bytes map straight to their
  byte tokens (byte fallback).
- A model's own tokenizer (brought in by ``pretrain import hf``) has other special tokens: their roles
  come from its ``tokenizer_config.json`` / ``special_tokens_map.json``. A model without a BOS token
  (Qwen) starts documents with its EOS token, the end-of-text separator it was trained with, and one
  without PAD pads with EOS (padding is never a target).
- ``hash`` is the SHA-256 of the tokenizer.json bytes; token shards record it so a shard can never be
  read with a different tokenizer by mistake.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import tokenizers

from pretrain.tokenizer import specials

_SURROGATES = re.compile("([\udc80-\udcff]+)")


def bad_text_index(texts: Sequence[str]) -> int | None:
    """Index of the first text that is not encodable Unicode (a non-str, or lone surrogates), else None."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            return i
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


def _bad_text_message(texts: Sequence[str]) -> str:
    i = bad_text_index(texts)
    return (f"text #{i} is not valid Unicode (lone surrogate or not a string); use encode_bytes for raw bytes"
            if i is not None else "tokenizer rejected the input")


class Tokenizer:
    """Byte-level BPE tokenizer loaded from a tokenizer.json (see :func:`load_tokenizer`)."""

    def __init__(self, hf: tokenizers.Tokenizer, path: str | Path | None = None, file_bytes: bytes | None = None,
                 roles: dict[str, str] | None = None):
        self.hf = hf
        self.hf.encode_special_tokens = True  # plain text never yields a special token
        self.path = Path(path) if path is not None else None
        data = file_bytes if file_bytes is not None else hf.to_str().encode("utf-8")
        self.hash = hashlib.sha256(data).hexdigest()
        self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
        self.bos_id = hf.token_to_id(specials.BOS)
        self.eos_id = hf.token_to_id(specials.EOS)
        self.pad_id = hf.token_to_id(specials.PAD)
        if roles and self.bos_id is None:  # a Hugging Face model's tokenizer: its own special tokens
            eos = hf.token_to_id(roles["eos_token"]) if "eos_token" in roles else None
            self.eos_id = eos
            self.bos_id = hf.token_to_id(roles["bos_token"]) if "bos_token" in roles else eos
            self.pad_id = hf.token_to_id(roles["pad_token"]) if "pad_token" in roles else eos
        self.fim_prefix_id = hf.token_to_id(specials.FIM_PREFIX)
        self.fim_middle_id = hf.token_to_id(specials.FIM_MIDDLE)
        self.fim_suffix_id = hf.token_to_id(specials.FIM_SUFFIX)
        self._byte_table: list[bytes] | None = None

    # -- text -------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        try:
            return self.hf.encode(text, add_special_tokens=False).ids
        except TypeError:
            raise ValueError(_bad_text_message([text])) from None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts at once (parallel in Rust); offsets are not computed."""
        texts = list(texts)
        try:
            return [e.ids for e in self.hf.encode_batch_fast(texts, add_special_tokens=False)]
        except TypeError:
            raise ValueError(_bad_text_message(texts)) from None

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text; invalid UTF-8 (only possible from :meth:`encode_bytes`) becomes U+FFFD."""
        return self.hf.decode(list(ids), skip_special_tokens=False)

    # -- bytes (byte fallback) ----------------------------------------------------------------------
    def encode_bytes(self, data: bytes) -> list[int]:
        """Any bytes -> ids: valid UTF-8 runs through BPE, each invalid byte as its own byte token."""
        text = data.decode("utf-8", errors="surrogateescape")
        byte_char = specials.bytes_to_unicode()
        ids: list[int] = []
        for i, part in enumerate(_SURROGATES.split(text)):
            if not part:
                continue
            if i % 2 == 0:
                ids.extend(self.encode(part))
            else:  # lone surrogates U+DC80..U+DCFF stand for the undecodable bytes 0x80..0xFF
                for ch in part:
                    tid = self.hf.token_to_id(byte_char[ord(ch) - 0xDC00])
                    if tid is None:
                        raise ValueError(f"tokenizer {self.path}: no byte token for 0x{ord(ch) - 0xDC00:02x}")
                    ids.append(tid)
        return ids

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Ids -> the exact bytes they spell (special tokens as their UTF-8 text)."""
        table = self._bytes_of_ids()
        try:
            return b"".join(table[i] for i in ids)
        except IndexError:
            raise ValueError(f"token id out of range for vocabulary of {self.vocab_size}") from None

    def _bytes_of_ids(self) -> list[bytes]:
        if self._byte_table is None:
            char_byte = {c: b for b, c in specials.bytes_to_unicode().items()}
            special = {t.content for t in self.hf.get_added_tokens_decoder().values()}
            table = [b""] * self.vocab_size
            for tok, i in self.hf.get_vocab(with_added_tokens=True).items():
                if tok in special or any(c not in char_byte for c in tok):
                    table[i] = tok.encode("utf-8")
                else:
                    table[i] = bytes(char_byte[c] for c in tok)
            self._byte_table = table
        return self._byte_table

    # -- misc ---------------------------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/tokenizer.json``; returns its path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "tokenizer.json"
        path.write_bytes(self.hf.to_str(pretty=True).encode("utf-8"))
        return path

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, path={str(self.path)!r}, hash={self.hash[:12]})"


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer.json, or the tokenizer.json inside a directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer not found: {p}")
    data = p.read_bytes()
    try:
        hf = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - the Rust error types are not exported
        raise ValueError(f"{p}: not a valid tokenizer.json: {str(exc).splitlines()[0]}") from None
    return Tokenizer(hf, path=p, file_bytes=data, roles=specials.hf_roles(p.parent))
