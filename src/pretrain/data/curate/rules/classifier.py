"""A fast document classifier the user trains from example sets, for quality scores and topic labels.

Features are fastText-style hashed word unigrams and bigrams (Joulin et al. 2017, "Bag of Tricks for
Efficient Text Classification"; DCLM and FineWeb-Edu use such classifiers for quality), L2-normalized
counts in ``n_features`` buckets, or the MiniLM sentence embedding (``features = "minilm"``). The model
is multinomial logistic regression trained by mini-batch gradient descent with L2 regularisation: a
binary quality model is the two-class case (score = probability of the positive label).

Saved as ``.npz`` (weights, bias, labels, feature settings): no pickles.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pretrain.data.curate.rules.text import norm_words
from pretrain.data.record import read_jsonl


def hashed_features(text: str, n_features: int, max_words: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, values): unigram and bigram counts, hashed with CRC-32, L2-normalized."""
    ws = norm_words(text)[:max_words]
    grams = ws + [f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False)]
    if not grams:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx = np.fromiter((zlib.crc32(g.encode("utf-8", "surrogatepass")) % n_features for g in grams),
                      dtype=np.int64, count=len(grams))
    uniq, counts = np.unique(idx, return_counts=True)
    vals = counts.astype(np.float32)
    return uniq, vals / np.linalg.norm(vals)


class TextClassifier:
    def __init__(self, labels: list[str], features: str = "hashed", n_features: int = 1 << 18):
        self.labels = list(labels)
        self.features = features
        self.n_features = 384 if features == "minilm" else n_features
        self.W = np.zeros((self.n_features, len(labels)), dtype=np.float32)
        self.b = np.zeros(len(labels), dtype=np.float32)

    # -- features
    def featurize(self, texts: list[str]):
        if self.features == "minilm":
            from pretrain.data.curate.rules.embed import embed

            return embed(texts)
        return [hashed_features(t, self.n_features) for t in texts]

    def _logits(self, feats) -> np.ndarray:
        if self.features == "minilm":
            return feats @ self.W + self.b
        return np.stack([v @ self.W[i] + self.b if len(i) else self.b.copy() for i, v in feats]) if feats else \
            np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        z = self._logits(self.featurize(texts))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- training
    def fit(self, texts: list[str], y: np.ndarray, epochs: int = 20, lr: float = 0.5, l2: float = 1e-5,
            batch: int = 32, seed: int = 0) -> list[float]:
        """Mini-batch gradient descent on the cross-entropy; returns the loss per epoch."""
        feats = self.featurize(texts)
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(epochs):
            order = rng.permutation(len(texts))
            total = 0.0
            for start in range(0, len(order), batch):
                rows = order[start: start + batch]
                sub = feats[rows] if self.features == "minilm" else [feats[r] for r in rows]
                z = self._logits(sub)
                z = z - z.max(axis=1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(axis=1, keepdims=True)
                total -= float(np.log(p[np.arange(len(rows)), y[rows]] + 1e-12).sum())
                g = p
                g[np.arange(len(rows)), y[rows]] -= 1.0
                g /= len(rows)
                self.b -= lr * g.sum(axis=0)
                if self.features == "minilm":
                    self.W -= lr * (sub.T @ g + l2 * self.W)
                else:
                    for (i, v), gr in zip(sub, g, strict=True):
                        self.W[i] -= lr * (np.outer(v, gr) + l2 * self.W[i])
            losses.append(total / max(1, len(texts)))
        return losses

    # -- persistence
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, W=self.W, b=self.b, labels=np.array(self.labels),
                            features=np.array(self.features), n_features=np.array(self.n_features))

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"classifier model not found: {p}")
        with np.load(p, allow_pickle=False) as z:
            m = cls([str(x) for x in z["labels"]], str(z["features"]), int(z["n_features"]))
            m.W, m.b = z["W"].astype(np.float32), z["b"].astype(np.float32)
        return m


def train_classifier(examples: dict[str, list[str | Path]], out: str | Path, features: str = "hashed",
                     n_features: int = 1 << 18, epochs: int = 20, text_field: str = "text",
                     max_per_label: int = 20000) -> dict[str, Any]:
    """Train from {label: [JSONL files]} and save to ``out``; returns training accuracy and counts."""
    labels = sorted(examples)
    if len(labels) < 2:
        raise ValueError("a classifier needs at least two labels (e.g. good=... bad=...)")
    texts: list[str] = []
    y: list[int] = []
    for li, label in enumerate(labels):
        n = 0
        for f in examples[label]:
            for doc in read_jsonl(f, text_field):
                if n >= max_per_label:
                    break
                texts.append(doc.text)
                y.append(li)
                n += 1
        if n == 0:
            raise ValueError(f"no examples for label {label!r} in {examples[label]}")
    model = TextClassifier(labels, features, n_features)
    yy = np.asarray(y)
    losses = model.fit(texts, yy, epochs=epochs)
    acc = float((model.predict_proba(texts).argmax(axis=1) == yy).mean())
    model.save(out)
    return {"labels": labels, "examples": {lab: int((yy == i).sum()) for i, lab in enumerate(labels)},
            "train_accuracy": acc, "final_loss": losses[-1] if losses else None, "path": str(out)}


