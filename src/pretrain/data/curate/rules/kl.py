"""Token-distribution outlier filter (Llama 3, Dubey et al. 2024, Section 3.1.1: "Kullback-Leibler
divergence to filter out documents containing excessive numbers of outlier tokens compared to the
training corpus distribution").

Collect: each domain's word-unigram counts, hashed into ``bins`` buckets. Resolve: the smoothed corpus
distribution q per domain. Apply: a document's own distribution p and KL(p || q) = sum p log(p/q)
in nats; documents above ``max_kl`` are removed. Long documents of ordinary text sit at 1-3 nats; runs of
gibberish, base64, tables of numbers or a foreign script inside an English corpus score far higher.
"""

from __future__ import annotations

import zlib

import numpy as np


def word_bins(text: str, bins: int) -> np.ndarray:
    return np.fromiter((zlib.crc32(w.encode("utf-8", "surrogatepass")) % bins for w in text.lower().split()),
                       dtype=np.int64)


def kl_divergence(counts: np.ndarray, q: np.ndarray) -> float:
    p = counts / counts.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


