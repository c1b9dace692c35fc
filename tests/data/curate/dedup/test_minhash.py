"""MinHash-LSH: signature estimates, and recall / precision of the dedup step on a generated corpus
with known Jaccard similarities (exact Jaccard of the 5-word shingle sets is computed for every pair)."""

from __future__ import annotations

import json
import random

import numpy as np

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.dedup.minhash import MinHasher, collision_probability, estimated_jaccard
from pretrain.data.curate.rules.text import norm_words


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
    from pretrain.data.record import read_dir

    removed_sets = {}
    for parts, workers in ((1, 1), (2, 2), (4, 1)):  # pairs cross shards (shards of 50 records)
        cfg = CurateConfig(shard_docs=50, steps=[{"type": "minhash_dedup", "partitions": parts,
                                                  "component_partitions": parts}])
        out = tmp_path / f"out{parts}"
        stats = curate([src], out, cfg, workers=workers, progress=False)
        assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"] == len(records)
        assert stats["steps"][0]["index"]["partitions"] == stats["steps"][0]["index"]["component_partitions"] == parts
        removed_sets[parts] = sorted((d.id, d.meta["duplicate_of"]) for d in read_dir(out / "removed"))
    assert removed_sets[1] == removed_sets[2] == removed_sets[4]  # the same decisions for 1, 2 and 4 partitions
    kept = {d.id for d in read_dir(tmp_path / "out1" / "data")}
    near_hi = [i for i, j in near if j >= 0.9]
    far_lo = [i for i, j in far if j < 0.5]
    assert len(near_hi) >= 100 and len(far_lo) >= 100
    recall = sum(i not in kept for i in near_hi) / len(near_hi)
    false_pos = sum(i not in kept for i in far_lo) / len(far_lo)
    assert recall >= 0.95, recall
    assert false_pos <= 0.01, false_pos
    assert all(f"orig{i}" in kept for i in range(120))  # the first of each cluster is the one kept
    removed = list(read_dir(tmp_path / "out1" / "removed"))
    assert all(r.meta["reason"] == "duplicate" and r.meta["duplicate_of"].startswith("orig") for r in removed)


def test_bucket_pairs_are_fixed_by_the_bucket():
    import numpy as np

    from pretrain.data.curate.steps.minhash_dedup import bucket_pairs

    keys = np.array([5, 5, 5, 7, 9, 9], dtype=np.uint64)
    docs = np.array([1, 4, 6, 2, 3, 8], dtype=np.uint64)
    got = sorted(map(tuple, bucket_pairs(keys, docs).tolist()))
    assert got == [(1, 4), (1, 6), (3, 8), (4, 6)]  # head-member and previous-member, never across buckets


def test_components_keep_the_earliest():
    import numpy as np

    from pretrain.data.curate.dedup.collected import components

    edges = np.array([[7, 3], [3, 9], [20, 21]], dtype=np.uint64)
    rows = sorted(map(tuple, components(edges).tolist()))
    assert rows == [(7, 3), (9, 3), (21, 20)]


def test_batched_shingles_follow_the_word_definition():
    """The byte-level, whole-batch shingling gives each document the shingles of its norm_words, the
    same alone or inside any batch: case and punctuation never matter, non-ASCII words keep re's \\w."""
    m = MinHasher()
    texts = ["Hello, World! The quick-brown fox; jumps over_it 42 times.",
             "hello world the quick brown fox jumps over_it 42 times",
             "Ünïcödé wörds — İstanbul'da çok güzel: 東京は 大きい 都市です。 ok",
             "ünïcödé wörds i̇stanbul da çok güzel 東京は 大きい 都市です ok",
             "naive cafe words here and there", "naïve café words here and there",
             "", "!!! ---", "two words", "x" * 5000 + " long token then words",
             "A Ñ b c d e f g"]
    flat, counts = m.shingle_batch(texts)
    assert counts.sum() == len(flat)
    per_doc = np.split(flat, np.cumsum(counts)[:-1])
    for t, got in zip(texts, per_doc, strict=True):
        alone = m.shingle_batch([t])[0]
        assert (alone == got).all(), t
        ref = m.shingle_batch([" ".join(norm_words(t))])[0]
        assert (ref == got).all(), t
        n = len(norm_words(t))
        assert len(got) == (max(0, n - 4) if n >= 5 else min(n, 1)), t
    assert (per_doc[0] == per_doc[1]).all() and (per_doc[2] == per_doc[3]).all()
    assert not set(per_doc[4]) & set(per_doc[5])  # accents are part of a word
    sigs = m.signatures(texts)
    for t, s in zip(texts, sigs, strict=True):
        assert (m.signature(t) == s).all()
    assert (sigs[6] == 0xFFFFFFFF).all() and (sigs[7] == 0xFFFFFFFF).all()
