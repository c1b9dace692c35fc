"""Evaluation speed, measured side by side in one run.

1. Held-out loss: batched ``evaluate_heldout`` vs a naive loop (one document window per forward pass),
   same model, same documents; prints tokens/s of both and the ratio (results agree to 1e-5).
2. Contamination audit: vectorized n-gram hashing + sorted lookup vs a pure-Python set of n-gram tuples,
   same training tokens; prints training tokens/s of both and the ratio.

    python benchmarks/eval_speed.py --quick
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from pretrain.eval.contamination import audit_contamination
from pretrain.eval.heldout import HeldoutDoc, evaluate_heldout
from pretrain.model import ModelConfig, Transformer


def naive_heldout(model, docs, seq_len, bos):
    nats, n = 0.0, 0
    with torch.no_grad():
        for d in docs:
            seq = [bos, *d.tokens]
            for k in range(0, len(seq) - 1, seq_len):
                x = torch.tensor([seq[k:k + seq_len]])
                y = torch.tensor([seq[k + 1:k + seq_len + 1]])
                logits = model(x).logits[:, :y.shape[1]]
                nats += F.cross_entropy(logits[0].float(), y[0], reduction="sum").item()
                n += y.shape[1]
    return nats / n, n


class FlatShards:
    """The part of the ShardSet interface the audit uses, over in-memory documents."""

    def __init__(self, docs):
        self.docs = docs
        self.num_docs = len(docs)
        self.lengths = np.array([len(d) for d in docs])

    def gather(self, idx):
        return np.concatenate([self.docs[i] for i in idx]).astype(np.int64)


def naive_contamination(train_docs, eval_docs, n):
    grams = {tuple(d[i:i + n]) for d in eval_docs for i in range(len(d) - n + 1)}
    seen = set()
    for d in train_docs:
        d = d.tolist()
        for i in range(len(d) - n + 1):
            g = tuple(d[i:i + n])
            if g in grams:
                seen.add(g)
    return len(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (about 30 s on 2 cores)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dim, layers, seq_len, n_docs, batch = (128, 2, 128, 24, 16) if args.quick else (256, 4, 256, 64, 16)
    vocab = 4096
    model = Transformer(ModelConfig(vocab_size=vocab, dim=dim, n_layers=layers, n_heads=4, max_seq_len=seq_len)).eval()
    docs = [HeldoutDoc(rng.integers(0, vocab - 8, int(rng.integers(50, 4 * seq_len))).tolist(), 1)
            for _ in range(n_docs)]
    t0 = time.perf_counter()
    res = evaluate_heldout(model, {"d": docs}, seq_len, batch, bos_id=vocab - 1)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss, n = naive_heldout(model, docs, seq_len, vocab - 1)
    t_naive = time.perf_counter() - t0
    assert abs(loss - res["overall"]["loss"]) < 1e-4 * loss
    print(f"held-out eval ({n} tokens, dim {dim} x {layers} layers, window {seq_len}, batch {batch}): "
          f"batched {n / t_batched:,.0f} tok/s, naive {n / t_naive:,.0f} tok/s, ratio {t_naive / t_batched:.2f}x")

    n_train = 300_000 if args.quick else 3_000_000
    train = [rng.integers(0, vocab, int(rng.integers(200, 2000))) for _ in range(n_train // 1000)]
    evals = [rng.integers(0, vocab, 200) for _ in range(50)] + [train[3][100:300]]
    shards = FlatShards(train)
    tokens = int(shards.lengths.sum())
    t0 = time.perf_counter()
    res = audit_contamination({"d": shards}, {"b": evals}, n=13)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    seen = naive_contamination(train, [e.tolist() for e in evals], 13)
    t_py = time.perf_counter() - t0
    assert res["benchmarks"]["b"]["contaminated_docs"] == 1 and seen == 200 - 12
    print(f"contamination audit ({tokens:,} training tokens, 13-grams): vectorized {tokens / t_vec:,.0f} tok/s, "
          f"python sets {tokens / t_py:,.0f} tok/s, ratio {t_py / t_vec:.1f}x")


if __name__ == "__main__":
    main()
