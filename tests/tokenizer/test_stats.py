"""Bytes-per-token statistics per domain, and comparison with a second tokenizer."""

from __future__ import annotations

import pytest

from pretrain.tokenizer import TokenizerConfig, train_tokenizer
from pretrain.tokenizer.stats import tokenizer_stats


def test_stats_per_domain_and_comparison(tokenizer, corpus, tmp_path):
    small = train_tokenizer(corpus, TokenizerConfig(vocab_size=300, n_reserved=0), tmp_path / "small",
                            val_fraction=0.1)
    s = tokenizer_stats(tokenizer, corpus, val_fraction=0.1, other=small)
    assert set(s["domains"]) <= {"code", "prose", "math", "multilingual"} and len(s["domains"]) >= 3
    for row in s["domains"].values():
        assert row["bytes_per_token"] == pytest.approx(row["bytes"] / row["tokens"])
        assert row["ratio"] > 1.0  # 600 tokens compress better than 300 (almost bytes only)
    assert s["overall"]["documents"] == sum(r["documents"] for r in s["domains"].values())
    # math is digit-split, so it compresses least
    assert s["domains"]["math"]["bytes_per_token"] < s["domains"]["prose"]["bytes_per_token"]


def test_stats_without_heldout_docs_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="no held-out documents"):
        tokenizer_stats(tokenizer, [], val_fraction=0.1)
