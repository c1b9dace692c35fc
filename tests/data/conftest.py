from __future__ import annotations

import pytest
import synthetic_corpus


@pytest.fixture(scope="session")
def corpus():
    return synthetic_corpus.make_corpus(docs_per_domain=60, seed=1)


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory):
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer

    cfg = TokenizerConfig(vocab_size=500, sample_bytes_per_domain=100_000, n_reserved=2)
    return train_tokenizer(corpus, cfg, tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def shards(corpus, tokenizer, tmp_path_factory):
    """{domain: ShardSet} of the train split (all documents: val_fraction 0)."""
    from pretrain.data.shards import load_split
    from pretrain.data.tokenize import tokenize_corpus

    root = tmp_path_factory.mktemp("tokens")
    from pretrain.data.record import write_jsonl

    write_jsonl(root / "in.jsonl", corpus)
    tokenize_corpus(root / "in.jsonl", tokenizer, root / "tokens", val_fraction=0.0, workers=1)
    return load_split(root / "tokens", "train", tokenizer.hash)
