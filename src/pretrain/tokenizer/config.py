"""Tokenizer configuration: byte-level BPE trained with Hugging Face `tokenizers`."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.configlib import check


@dataclass
class TokenizerConfig:
    path: str = ""
    """Existing tokenizer.json to use instead of training one ('' = train into <run>/tokenizer/)."""
    vocab_size: int = 8192
    """Target vocabulary size, special and reserved tokens included."""
    min_frequency: int = 2
    """Minimum pair frequency for a BPE merge."""
    sample_bytes_per_domain: int = 20_000_000
    """Training sample: at most this many bytes of text from each domain (domain-balanced)."""
    split_digits: bool = True
    """Split numbers into single digits before BPE (Llama/DeepSeek practice)."""
    n_reserved: int = 8
    """Reserved special-token slots for later use."""

    def validate(self) -> None:
        check(self.vocab_size >= 300, "vocab_size", f"must be >= 300 to hold 256 bytes and specials (got {self.vocab_size})")
        check(self.min_frequency >= 1, "min_frequency", "must be >= 1")
