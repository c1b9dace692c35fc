"""Scaling test fixtures: tiny shared data for real training runs (scaling_helpers.py is in
tests/helpers/, importable by name)."""

from __future__ import annotations

import random

import pytest
import torch

WORDS = "the model data token train loss layer attention value memory sequence batch learning rate weight".split()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A two-domain corpus, its tokenizer and token shards (train/ and val/), built once per session."""
    from pretrain.data.record import Document, write_jsonl
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer

    root = tmp_path_factory.mktemp("scaling_data")
    rng = random.Random(0)
    docs = []
    for i in range(120):
        prose = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + "."
        docs.append(Document(prose, source=f"prose:{i}", domain="prose"))
        code = "\n".join(f"def f{j}(x):\n    return x + {j}" for j in range(rng.randint(2, 8)))
        docs.append(Document(code, source=f"code:{i}", domain="code"))
    write_jsonl(root / "docs.jsonl", docs)
    tok = train_tokenizer(docs, TokenizerConfig(vocab_size=320, sample_bytes_per_domain=60_000, n_reserved=2),
                          root / "tokenizer")
    tokenize_corpus(root / "docs.jsonl", tok, root / "tokens", val_fraction=0.2, workers=1)
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models only pay synchronisation for a second thread on a shared 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
