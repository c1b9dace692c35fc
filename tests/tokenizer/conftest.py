from __future__ import annotations

import pytest
import synthetic_corpus


@pytest.fixture(scope="session")
def corpus():
    return synthetic_corpus.make_corpus()


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory):
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer

    cfg = TokenizerConfig(vocab_size=600, min_frequency=2, sample_bytes_per_domain=200_000, n_reserved=4)
    return train_tokenizer(corpus, cfg, tmp_path_factory.mktemp("tok"), val_fraction=0.1)
