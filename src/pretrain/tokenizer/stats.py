"""Compression statistics: UTF-8 bytes per token per domain on held-out text.

Bytes per token is the tokenizer's compression ratio; higher means shorter sequences for the same text
(and so more text per FLOP), at the price of a larger softmax. Comparing two tokenizers on the same
held-out documents shows where a vocabulary is wasted or missing (e.g. code indentation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pretrain.data.record import Document
from pretrain.data.split import is_heldout
from pretrain.tokenizer.wrapper import Tokenizer


def _heldout_texts(docs: Iterable[Document], val_fraction: float, max_bytes: int) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {}
    used: dict[str, int] = {}
    for doc in docs:
        if val_fraction > 0 and not is_heldout(doc.id, val_fraction):
            continue
        if used.get(doc.domain, 0) >= max_bytes:
            continue
        texts.setdefault(doc.domain, []).append(doc.text)
        used[doc.domain] = used.get(doc.domain, 0) + len(doc.text.encode("utf-8", "surrogatepass"))
    return texts


def _measure(tok: Tokenizer, texts: list[str]) -> dict[str, float]:
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    n_tokens = sum(len(ids) for ids in tok.encode_batch(texts))
    return {"documents": len(texts), "bytes": n_bytes, "tokens": n_tokens,
            "bytes_per_token": n_bytes / max(n_tokens, 1)}


def tokenizer_stats(tok: Tokenizer, docs: Iterable[Document], val_fraction: float = 0.0,
                    other: Tokenizer | None = None, max_bytes_per_domain: int = 2_000_000) -> dict:
    """Bytes per token per domain on held-out documents (``val_fraction`` by id hash; 0 = all documents).

    With ``other``, the same texts are measured with it too, and ``ratio`` = ours / other's bytes per
    token (> 1: ours compresses better).
    """
    texts = _heldout_texts(docs, val_fraction, max_bytes_per_domain)
    if not texts:
        raise ValueError("tokenizer stats: no held-out documents found (check --val-fraction and the input)")
    out: dict = {"tokenizer": str(tok.path), "vocab_size": tok.vocab_size, "hash": tok.hash,
                 "val_fraction": val_fraction, "domains": {}}
    if other is not None:
        out["other"] = {"tokenizer": str(other.path), "vocab_size": other.vocab_size}
    all_texts = [t for ts in texts.values() for t in ts]
    for domain, ts in [*sorted(texts.items()), ("overall", all_texts)]:
        row = _measure(tok, ts)
        if other is not None:
            o = _measure(other, ts)
            row["other_tokens"] = o["tokens"]
            row["other_bytes_per_token"] = o["bytes_per_token"]
            row["ratio"] = row["bytes_per_token"] / max(o["bytes_per_token"], 1e-12)
        if domain == "overall":
            out["overall"] = row
        else:
            out["domains"][domain] = row
    return out


def write_stats(stats: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(stats, indent=2), encoding="utf-8")
