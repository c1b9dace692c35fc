"""MinHash-LSH: signature estimates, and recall / precision of the dedup step on a generated corpus
with known Jaccard similarities (exact Jaccard of the 5-word shingle sets is computed for every pair)."""

from __future__ import annotations

import json
import random

import numpy as np

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.minhash import MinHasher, collision_probability, estimated_jaccard
from pretrain.data.curate.text import norm_words


def shingle_set(text: str, n: int = 5) -> set:
    ws = norm_words(text)
    return {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def test_signature_estimates_jaccard():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    base = [rng.choice(vocab) for _ in range(400)]
    m = MinHasher(num_perm=256)
    for changes in (0, 10, 40, 120):
        other = list(base)
        for i in rng.sample(range(400), changes):
            other[i] = rng.choice(vocab)
        a, b = " ".join(base), " ".join(other)
        est = estimated_jaccard(m.signature(a), m.signature(b))
        assert abs(est - jaccard(a, b)) < 0.1, (changes, est, jaccard(a, b))
    assert m.signature(" ".join(base)).dtype == np.uint32
    assert (m.signature("") == 0xFFFFFFFF).all()


def test_collision_curve():
    assert collision_probability(0.9, 14, 8) > 0.99
    assert collision_probability(0.3, 14, 8) < 0.01


def test_dedup_recall_and_precision(tmp_path):
    rng = random.Random(1)
    vocab = [f"tok{i}" for i in range(5000)]
    originals = [[rng.choice(vocab) for _ in range(300)] for _ in range(120)]
    records, near, far = [], [], []
    for i, ws in enumerate(originals):
        records.append({"text": " ".join(ws), "id": f"orig{i}"})
    for i, ws in enumerate(originals):
        other = list(ws)
        for j in rng.sample(range(300), 2):  # two word substitutions: Jaccard about 0.93
            other[j] = rng.choice(vocab)
        text = " ".join(other)
        near.append((f"near{i}", jaccard(" ".join(ws), text)))
        records.append({"text": text, "id": f"near{i}"})
    for i, ws in enumerate(originals):
        other = list(ws)
        for j in rng.sample(range(300), 25):  # 25 substitutions: Jaccard about 0.4
            other[j] = rng.choice(vocab)
        text = " ".join(other)
        far.append((f"far{i}", jaccard(" ".join(ws), text)))
        records.append({"text": text, "id": f"far{i}"})
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = CurateConfig(steps=[{"type": "minhash_dedup"}])
    curate([src], tmp_path / "out", cfg, workers=1, progress=False)
    from pretrain.data.record import read_dir

    kept = {d.id for d in read_dir(tmp_path / "out" / "data")}
    near_hi = [i for i, j in near if j >= 0.9]
    far_lo = [i for i, j in far if j < 0.5]
    assert len(near_hi) >= 100 and len(far_lo) >= 100
    recall = sum(i not in kept for i in near_hi) / len(near_hi)
    false_pos = sum(i not in kept for i in far_lo) / len(far_lo)
    assert recall >= 0.95, recall
    assert false_pos <= 0.01, false_pos
    assert all(f"orig{i}" in kept for i in range(120))  # the first of each cluster is the one kept
    removed = [json.loads(x) for x in __import__("pretrain.data.record", fromlist=["x"]).open_text(
        next((tmp_path / "out" / "removed").glob("*.zst"))).read().splitlines()]
    assert all(r["meta"]["reason"] == "duplicate" and r["meta"]["duplicate_of"].startswith("orig") for r in removed)
