"""Contamination audit: token n-gram overlap between evaluation sets and the training shards.

Every evaluation document is cut into token n-grams (default 13, after GPT-3's 13-gram word overlap,
Brown et al. 2020 app. C; Llama 2 sec. A.6 uses token n-grams the same way). The training split is
streamed shard by shard; each training n-gram is looked up in the sorted set of evaluation n-grams
(64-bit polynomial hashes, vectorized). Per benchmark the audit reports the fraction of its n-grams seen
in training, how many documents are contaminated (more than ``dirty_fraction`` of their n-grams seen),
and the training documents with the most overlap, traced through the shards' lineage index
(domain, shard path, document index, record id, source) so they can be removed or the benchmark
reported on its clean subset. n-grams never cross a training document boundary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_P = np.uint64(0x100000001B3)  # FNV-64 prime as the polynomial base (odd, so multiplication is invertible)
_CHUNK_TOKENS = 1 << 22  # training tokens hashed per vectorized step (~100 MB of temporaries)


def ngram_hashes(tokens: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every token n-gram of ``tokens`` (length max(0, len - n + 1))."""
    t = np.asarray(tokens, dtype=np.uint64) + np.uint64(1)  # +1: id 0 still changes the hash
    m = len(t) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _P + t[k:k + m]
        # splitmix64 finaliser: spreads the polynomial hash so nearby n-grams do not collide in structure
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_set, values).clip(max=len(sorted_set) - 1)
    return sorted_set[pos] == values


def _train_chunks(shards: Any, max_docs: int = 0):
    """(first doc index, doc lengths, concatenated tokens) chunks of a ShardSet."""
    n_docs = shards.num_docs if not max_docs else min(max_docs, shards.num_docs)
    lengths = np.asarray(shards.lengths[:n_docs], dtype=np.int64)
    start = 0
    while start < n_docs:
        end, total = start, 0
        while end < n_docs and (end == start or total + lengths[end] <= _CHUNK_TOKENS):
            total += int(lengths[end])
            end += 1
        yield start, lengths[start:end], shards.gather(np.arange(start, end))
        start = end


def audit_contamination(
    train: Mapping[str, Any],
    eval_sets: Mapping[str, Sequence[Sequence[int] | np.ndarray]],
    n: int = 13,
    dirty_fraction: float = 0.0,
    max_hits: int = 20,
    max_train_docs: int = 0,
) -> dict[str, Any]:
    """Audit token-id evaluation sets ``{benchmark: [doc tokens]}`` against ``{domain: ShardSet}``.

    Returns ``{"ngram": n, "train_tokens": ..., "benchmarks": {name: {docs, docs_with_ngrams, ngrams,
    ngram_overlap, contaminated_docs, contaminated_fraction, doc_overlap: [...], hits: [...]}}}``.
    """
    if n < 1:
        raise ValueError(f"contamination n-gram size must be >= 1 (got {n})")
    doc_hashes = {name: [ngram_hashes(d, n) for d in docs] for name, docs in eval_sets.items()}
    bench_sets = {name: np.unique(np.concatenate(hs)) if hs else np.zeros(0, np.uint64)
                  for name, hs in doc_hashes.items()}
    all_eval = np.unique(np.concatenate(list(bench_sets.values()))) if bench_sets else np.zeros(0, np.uint64)

    seen_parts: list[np.ndarray] = []  # eval n-grams found in training
    hit_docs: list[tuple[str, np.ndarray, np.ndarray]] = []  # (domain, train doc per match, matched hash)
    train_tokens = 0
    for domain in sorted(train):
        shards = train[domain]
        for first, lengths, tokens in _train_chunks(shards, max_train_docs):
            train_tokens += len(tokens)
            h = ngram_hashes(tokens, n)
            if not len(h):
                continue
            # An n-gram starting at p is valid when it ends inside the document that p belongs to.
            doc_of = np.repeat(np.arange(len(lengths)), lengths)[:len(h)]
            doc_end = np.cumsum(lengths)[doc_of]
            valid = np.arange(len(h)) + n <= doc_end
            match = valid & _in_sorted(h, all_eval)
            if match.any():
                seen_parts.append(h[match])
                hit_docs.append((domain, first + doc_of[match], h[match]))
    seen = np.unique(np.concatenate(seen_parts)) if seen_parts else np.zeros(0, np.uint64)

    report: dict[str, Any] = {}
    for name, hs in doc_hashes.items():
        fractions = [float(_in_sorted(x, seen).mean()) if len(x) else 0.0 for x in hs]
        with_ngrams = sum(1 for x in hs if len(x))
        dirty = [i for i, (x, f) in enumerate(zip(hs, fractions, strict=True)) if len(x) and f > dirty_fraction]
        total = sum(len(x) for x in hs)
        overlap = sum(int(_in_sorted(x, seen).sum()) for x in hs)
        # Training documents sharing n-grams with this benchmark, most overlap first, with lineage.
        counts: dict[tuple[str, int], int] = {}
        for domain, docs, hashes in hit_docs:
            mine = _in_sorted(hashes, bench_sets[name])
            for d, c in zip(*np.unique(docs[mine], return_counts=True), strict=True):
                counts[(domain, int(d))] = counts.get((domain, int(d)), 0) + int(c)
        hits = []
        for (domain, d), c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_hits]:
            row = {"domain": domain, "doc": d, "matched_ngrams": c}
            shards = train[domain]
            if hasattr(shards, "lineage"):
                row["shard"], row["shard_index"] = shards.lineage(d)
            if hasattr(shards, "doc_source"):
                src = shards.doc_source(d)
                row["id"], row["source"] = getattr(src, "id", ""), getattr(src, "source", str(src))
            hits.append(row)
        report[name] = {
            "docs": len(hs),
            "docs_with_ngrams": with_ngrams,
            "ngrams": total,
            "ngram_overlap": overlap / total if total else 0.0,
            "contaminated_docs": len(dirty),
            "contaminated_fraction": len(dirty) / with_ngrams if with_ngrams else 0.0,
            "contaminated_doc_indices": dirty[:1000],
            "training_docs_with_overlap": len(counts),
            "hits": hits,
        }
    return {"ngram": n, "dirty_fraction": dirty_fraction, "train_tokens": int(train_tokens), "benchmarks": report}


# ------------------------------------------------------------------------------------ eval-set sources

def bundled_task_texts() -> dict[str, list[str]]:
    """The texts of the bundled offline lm-eval tasks (read directly; lm-eval is not needed)."""
    root = Path(__file__).parent / "tasks" / "pretrain_offline"
    out = {}
    for name, fields in (("ppl", ("text",)), ("mc", ("query", "choices")), ("gen", ("prompt", "answer"))):
        texts = []
        for line in (root / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            parts = []
            for f in fields:
                v = rec[f]
                parts.extend(v if isinstance(v, list) else [v])
            texts.append("".join(parts))
        out[f"pretrain_offline_{name}"] = texts
    return out


def jsonl_texts(path: str | Path) -> list[str]:
    """Texts of a JSONL(.gz/.zst) file of records with a ``text`` field (errors name file and line)."""
    from pretrain.data.record import read_jsonl

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"contamination eval set not found: {p}")
    return [d.text for d in read_jsonl(p)]


def save(result: Mapping[str, Any], out_dir: str | Path, name: str = "contamination") -> Path:
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return path
