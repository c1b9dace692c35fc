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
    max_token_length: int = 16
    """Longest token, in characters, a merge may create (0 = no limit); bounds degenerate long tokens."""

    def validate(self) -> None:
        check(self.vocab_size >= 300, "vocab_size", f"must be >= 300 to hold 256 bytes and specials (got {self.vocab_size})")
        check(self.vocab_size < 2**32, "vocab_size", f"must fit uint32 token ids (got {self.vocab_size})")
        check(self.min_frequency >= 1, "min_frequency", "must be >= 1")
        check(self.sample_bytes_per_domain > 0, "sample_bytes_per_domain", "must be > 0")
        check(self.n_reserved >= 0, "n_reserved", f"must be >= 0 (got {self.n_reserved})")
        check(self.max_token_length >= 0, "max_token_length", f"must be >= 0 (got {self.max_token_length})")
