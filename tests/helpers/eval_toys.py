"""Toy tokenizer and models obeying the project's contracts, for evaluation tests.

* ByteTokenizer: ids 0..255 are the UTF-8 bytes, then BOS/EOS/PAD (tokens == bytes, handy for bpb).
* UniformByteModel: uniform over the 256 byte ids: exactly 8 bits per byte, byte perplexity 256.
* InductionModel: the "copy" model: predicts the token that followed the latest earlier occurrence of
  the current k-gram (a hard-coded induction head), so it retrieves needles perfectly.
* TinyCausalModel: a small random causal transformer whose predictions depend on the context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


class ByteTokenizer:
    vocab_size = 259
    bos_id = 256
    eos_id = 257
    pad_id = 258

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if int(i) < 256).decode("utf-8", errors="replace")


@dataclass
class Out:
    logits: torch.Tensor


class UniformByteModel(nn.Module):
    def __init__(self, vocab_size: int = 259):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.vocab_size = vocab_size

    def forward(self, input_ids, targets=None, doc_ids=None):
        B, T = input_ids.shape
        logits = torch.full((B, T, self.vocab_size), float("-inf"))
        logits[..., :256] = 0.0
        return Out(logits + self.dummy)


class InductionModel(nn.Module):
    def __init__(self, k: int = 8, vocab_size: int = 259):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.k, self.vocab_size = k, vocab_size

    def forward(self, input_ids, targets=None, doc_ids=None):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab_size)
        for b in range(B):
            x = input_ids[b].tolist()
            last: dict[tuple, int] = {}
            for t in range(T):
                key = tuple(x[max(0, t - self.k + 1):t + 1])
                if len(key) == self.k and key in last:
                    logits[b, t, x[last[key] + 1]] = 20.0
                if len(key) == self.k:
                    last[key] = t
        return Out(logits + self.dummy)


class TinyCausalModel(nn.Module):
    def __init__(self, vocab_size: int = 259, dim: int = 32, max_len: int = 128, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.layer = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.1, batch_first=True)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, input_ids, targets=None, doc_ids=None):
        T = input_ids.shape[1]
        x = self.emb(input_ids) + self.pos(torch.arange(T))
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        return Out(self.head(self.layer(x, src_mask=mask, is_causal=True)))


class NgramMemorizer(nn.Module):
    """Has memorized its 'training' documents: predicts the token that followed the current k-gram there."""

    def __init__(self, docs, k: int = 4, vocab_size: int = 259):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.k, self.vocab_size = k, vocab_size
        self.table = {}
        for d in docs:
            d = [int(t) for t in d]
            for i in range(k, len(d)):
                self.table.setdefault(tuple(d[i - k:i]), d[i])

    def forward(self, input_ids, targets=None, doc_ids=None):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab_size)
        for b in range(B):
            x = input_ids[b].tolist()
            for t in range(self.k - 1, T):
                nxt = self.table.get(tuple(x[t - self.k + 1:t + 1]))
                if nxt is not None:
                    logits[b, t, nxt] = 20.0
        return Out(logits + self.dummy)


def write_shards(root, docs_by_domain, vocab_size: int = 259):
    """Write byte-token shards tokens/<split>/<domain>/ the way `pretrain tokenize` does."""
    import numpy as np

    from pretrain.data.shards import ShardWriter

    for domain, texts in docs_by_domain.items():
        w = ShardWriter(root / domain, "0" * 64, vocab_size, shard_tokens=300)
        for i, t in enumerate(texts):
            toks = np.frombuffer(t.encode(), dtype=np.uint8).astype(np.int64)
            w.add(toks, [len(toks)], [len(t.encode())], [f"{i:016x}"], [f"{domain}.txt:{i + 1}"])
        w.close()
