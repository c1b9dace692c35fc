import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_toys import ByteTokenizer, TinyCausalModel, UniformByteModel

from pretrain.eval.heldout import (
    HeldoutDoc,
    document_windows,
    evaluate_heldout,
    evaluate_heldout_texts,
    metrics_row,
    select_docs,
    token_counts,
    unigram_bits_per_byte,
)

TEXTS = {
    "code": ["def f(x):\n    return x + 1\n", "import os\nprint(os.getcwd())\n" * 5],
    "literature": ["To be, or not to be, that is the question. " * 4, "Héllo wörld — ünïcode ✓", "x"],
}


def test_uniform_byte_model_is_exactly_8_bits_per_byte():
    tok = ByteTokenizer()
    res = evaluate_heldout_texts(UniformByteModel(), tok, TEXTS, seq_len=16, batch_size=3)
    for r in [*res["domains"].values(), res["overall"]]:
        assert r["bits_per_byte"] == pytest.approx(8.0, abs=1e-6)
        assert math.exp(r["loss"] * r["tokens"] / r["bytes"]) == pytest.approx(256.0, rel=1e-6)  # byte ppl
        assert r["ppl"] == pytest.approx(256.0, rel=1e-6)
    n_bytes = sum(len(t.encode()) for t in TEXTS["literature"])
    assert res["domains"]["literature"]["bytes"] == n_bytes
    assert res["domains"]["literature"]["tokens"] == n_bytes  # every byte predicted exactly once


def naive_loss(model, docs, seq_len, bos):
    """One document at a time, one window at a time, batch size 1."""
    model.eval()
    nats, n = 0.0, 0
    with torch.no_grad():
        for d in docs:
            seq = [bos, *d.tokens]
            k = 0
            while k < len(seq) - 1:
                x = torch.tensor([seq[k:k + seq_len]])
                y = torch.tensor([seq[k + 1:k + seq_len + 1]])
                logits = model(x).logits[:, :y.shape[1]]
                nats += F.cross_entropy(logits[0].double(), y[0], reduction="sum").item()
                n += y.shape[1]
                k += seq_len
    return nats, n


def test_batched_eval_equals_naive_per_document_loop():
    tok = ByteTokenizer()
    model = TinyCausalModel(max_len=64)
    model.train()  # evaluation must switch dropout off itself, and restore the mode
    rng = np.random.default_rng(0)
    docs = {"a": [HeldoutDoc(rng.integers(0, 256, n).tolist(), n) for n in (1, 5, 16, 17, 40, 70)],
            "b": [HeldoutDoc(tok.encode("hello world " * 3), 36)]}
    res = evaluate_heldout(model, docs, seq_len=16, batch_size=4, bos_id=tok.bos_id)
    assert model.training
    for name, ds in docs.items():
        nats, n = naive_loss(model, ds, 16, tok.bos_id)
        assert res["domains"][name]["tokens"] == n
        assert res["domains"][name]["loss"] == pytest.approx(nats / n, rel=1e-5)
        assert res["domains"][name]["bits_per_byte"] == pytest.approx(nats / math.log(2) / sum(d.n_bytes for d in ds),
                                                                      rel=1e-5)
    again = evaluate_heldout(model, docs, seq_len=16, batch_size=3, bos_id=tok.bos_id)
    assert again["overall"]["loss"] == pytest.approx(res["overall"]["loss"], rel=1e-6)  # batch size invariant
    row = metrics_row(res)
    assert set(row) == {"val_loss", "val_bpb", "val_loss/a", "val_bpb/a", "val_loss/b", "val_bpb/b"}


def test_windows_cover_every_token_once():
    wins = document_windows(list(range(10)), 4, bos_id=99)
    assert wins == [[99, 0, 1, 2, 3], [3, 4, 5, 6, 7], [7, 8, 9]]
    assert sum(len(w) - 1 for w in wins) == 10
    assert document_windows([5], 4, None) == []  # a lone token without BOS has nothing to predict


def test_caps_are_deterministic_and_whole_documents():
    docs = [HeldoutDoc([1] * 10, 10, str(i)) for i in range(10)]
    picked = select_docs(docs, max_docs=4)
    assert [d.source for d in picked] == ["0", "3", "6", "9"]
    assert len(select_docs(docs, max_tokens=35)) == 3
    assert len(select_docs(docs, max_tokens=5)) == 1  # at least one document


def test_unigram_baseline_matches_hand_computation():
    counts = np.array([3, 1, 0, 0])
    docs = {"d": [HeldoutDoc([0, 1, 2], 6)]}
    res = unigram_bits_per_byte(counts, docs, vocab_size=4)
    p = np.array([4, 2, 1, 1]) / 8
    nats = -(np.log(p[0]) + np.log(p[1]) + np.log(p[2]))
    assert res["domains"]["d"]["bits_per_byte"] == pytest.approx(nats / math.log(2) / 6)
    # Uniform counts over the 256 bytes -> 8 bits per byte for byte tokens.
    flat = unigram_bits_per_byte({"x": np.full(256, 5), "y": np.full(256, 5)}, {"d": [HeldoutDoc([7, 8], 2)]})
    assert flat["overall"]["bits_per_byte"] == pytest.approx(8.0)
    with pytest.raises(ValueError, match="token id outside"):
        token_counts([[0, 9]], 4)


def test_real_transformer_batched_equals_naive():
    from pretrain.model import ModelConfig, Transformer

    torch.manual_seed(1)
    model = Transformer(ModelConfig(vocab_size=259, dim=32, n_layers=2, n_heads=2, max_seq_len=16, multiple_of=16))
    rng = np.random.default_rng(1)
    docs = {"x": [HeldoutDoc(rng.integers(0, 256, n).tolist(), n) for n in (3, 16, 33)]}
    res = evaluate_heldout(model, docs, seq_len=16, batch_size=2, bos_id=256)
    nats, n = naive_loss(model, docs["x"], 16, 256)
    assert res["overall"]["tokens"] == n == 52
    assert res["overall"]["loss"] == pytest.approx(nats / n, rel=1e-5)
