"""The speedrun's split and bits-per-character metric."""

from __future__ import annotations

import math

import pytest
import torch

from pretrain.speedrun import SHAKESPEARE_CHARS, bits_per_char, shakespeare_text, split_text, stream_nll


class CharTokenizer:
    def __init__(self, alphabet: str, bos: bool):
        self.stoi = {c: i for i, c in enumerate(alphabet)}
        self.bos_id = len(alphabet) if bos else None

    def encode(self, text):
        return [self.stoi[c] for c in text]


class Uniform(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, x):
        return torch.zeros(*x.shape, self.vocab)


class Bigram(torch.nn.Module):
    """Logits depend on the previous token only: lets a test compute the exact NLL by hand."""

    def __init__(self, vocab):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g))

    def forward(self, x):
        return self.table[x]


def test_split_sizes_match_the_specification():
    text = shakespeare_text()
    assert len(text) == SHAKESPEARE_CHARS
    train, val = split_text(text)
    assert len(train) == int(SHAKESPEARE_CHARS * 0.9) == 8_588_796
    assert len(val) == SHAKESPEARE_CHARS - 8_588_796
    assert train + val == text


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        split_text("abc", 1.5)


def test_uniform_model_scores_log2_alphabet_bits_per_char():
    text = "to be or not to be, that is the question\n" * 20
    alphabet = "".join(sorted(set(text)))
    tok = CharTokenizer(alphabet, bos=True)
    bpc = bits_per_char(Uniform(len(alphabet) + 1), tok, text, context=16, batch_size=3)
    # With BOS every character is predicted once, each with probability 1/V.
    assert bpc == pytest.approx(math.log2(len(alphabet) + 1), rel=1e-6)


@pytest.mark.parametrize("context", [1, 5, 64])
def test_windows_score_every_token_once_and_match_a_naive_loop(context):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 11, (103,), generator=g)
    model = Bigram(11)
    nats, count = stream_nll(model, ids, context=context, batch_size=4)
    logp = torch.log_softmax(model.table.detach(), dim=-1)
    naive = -sum(float(logp[ids[i - 1], ids[i]]) for i in range(1, len(ids)))
    assert count == len(ids) - 1
    assert nats == pytest.approx(naive, rel=1e-5)
