"""Held-out loss, perplexity and bits per byte, per domain and overall, plus the unigram baseline.

Windowing (how a document is scored):
  * ``BOS`` is prepended to every document, so its first token is predicted from BOS alone, as in
    training (the loader starts each document with BOS). Without a BOS id the first token is context only.
  * A document longer than the window is cut into non-overlapping windows of ``seq_len`` predictions:
    window k feeds ``seq[kT : kT+T]`` and predicts ``seq[kT+1 : kT+T+1]`` (``seq`` = BOS + tokens). Every
    token is predicted exactly once; the first token of a later window sees only that window's tokens
    (no context carried over), which is the same context a packed training row gives.
  * One document per row: documents never share a window, so boundaries need no attention mask.
  * EOS is not scored: bits per byte counts the cost of the document's own bytes.

Bits per byte (tokenizer independent) = total nats / ln 2 / UTF-8 bytes of the text; a uniform model
over 256 bytes scores exactly 8. Loss is nats per token and ``ppl = exp(loss)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrain.eval.scoring import score_sequences

LN2 = math.log(2.0)
_WINDOWS_PER_SLICE = 64  # batches of windows scored per call (bounds memory, keeps batches full)


@dataclass
class HeldoutDoc:
    """One held-out document: its token ids (no BOS/EOS) and the UTF-8 byte length of its text."""

    tokens: Sequence[int] | np.ndarray
    n_bytes: int
    source: str = ""


def document_windows(tokens: Sequence[int], seq_len: int, bos_id: int | None) -> list[list[int]]:
    """The non-overlapping windows of one document; each is scored from its second token on."""
    if seq_len <= 0:
        raise ValueError(f"seq_len must be > 0 (got {seq_len})")
    seq = ([bos_id] if bos_id is not None else []) + [int(t) for t in tokens]
    return [seq[k:k + seq_len + 1] for k in range(0, len(seq) - 1, seq_len)]


def summarize(nats: float, tokens: int, n_bytes: int, docs: int) -> dict[str, float | int]:
    """Loss (nats/token), perplexity and bits per byte from totals."""
    loss = nats / tokens if tokens else float("nan")
    return {
        "loss": loss,
        "ppl": math.exp(loss) if tokens and loss < 700 else float("inf") if tokens else float("nan"),
        "bits_per_byte": nats / LN2 / n_bytes if n_bytes else float("nan"),
        "tokens": int(tokens),
        "bytes": int(n_bytes),
        "docs": int(docs),
        "nats": float(nats),
    }


def select_docs(docs: Sequence[HeldoutDoc], max_docs: int = 0, max_tokens: int = 0) -> list[HeldoutDoc]:
    """Deterministic cap: ``max_docs`` evenly spaced documents, then whole documents up to ``max_tokens``."""
    picked = list(docs)
    if max_docs and len(picked) > max_docs:
        idx = np.linspace(0, len(picked) - 1, max_docs).round().astype(int)
        picked = [picked[i] for i in idx]
    if max_tokens:
        out, total = [], 0
        for d in picked:
            if out and total + len(d.tokens) > max_tokens:
                break
            out.append(d)
            total += len(d.tokens)
        picked = out
    return picked


def evaluate_heldout(
    model: torch.nn.Module,
    docs_by_domain: Mapping[str, Sequence[HeldoutDoc]],
    seq_len: int,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    bos_id: int | None = None,
    max_docs: int = 0,
    max_tokens: int = 0,
) -> dict[str, Any]:
    """Per-domain and overall loss, perplexity and bits per byte of ``model`` on held-out documents.

    Returns ``{"domains": {name: {loss, ppl, bits_per_byte, tokens, bytes, docs, nats}}, "overall":
    {...}, "macro_bits_per_byte": mean over domains, "seq_len": seq_len}``. ``overall`` pools all
    tokens (token weighted). Deterministic: fixed document choice and order, no dropout, fp64 sums.
    """
    domains: dict[str, dict] = {}
    tot_nats = 0.0
    tot_tokens = tot_bytes = tot_docs = 0
    for name in sorted(docs_by_domain):
        docs = select_docs(docs_by_domain[name], max_docs, max_tokens)
        nats, n_tok = 0.0, 0
        windows: list[list[int]] = []
        for k, d in enumerate(docs):
            windows.extend(document_windows(d.tokens, seq_len, bos_id))
            # Score in slices so an uncapped evaluation never holds every window in memory at once.
            if len(windows) >= _WINDOWS_PER_SLICE * batch_size or (k == len(docs) - 1 and windows):
                for s in score_sequences(model, windows, [1] * len(windows), batch_size, device):
                    nats -= float(s.logprobs.sum())
                    n_tok += len(s.logprobs)
                windows = []
        n_bytes = sum(int(d.n_bytes) for d in docs)
        domains[name] = summarize(nats, n_tok, n_bytes, len(docs))
        tot_nats += nats
        tot_tokens += n_tok
        tot_bytes += n_bytes
        tot_docs += len(docs)
    bpbs = [v["bits_per_byte"] for v in domains.values() if v["bytes"]]
    return {
        "domains": domains,
        "overall": summarize(tot_nats, tot_tokens, tot_bytes, tot_docs),
        "macro_bits_per_byte": float(np.mean(bpbs)) if bpbs else float("nan"),
        "seq_len": seq_len,
        "bos": bos_id is not None,
    }


def texts_to_docs(tokenizer: Any, texts: Iterable[str]) -> list[HeldoutDoc]:
    """Encode texts with a tokenizer (``encode(text) -> ids``) into held-out documents."""
    return [HeldoutDoc(tokenizer.encode(t), len(t.encode("utf-8"))) for t in texts]


def evaluate_heldout_texts(
    model: torch.nn.Module,
    tokenizer: Any,
    texts_by_domain: Mapping[str, Sequence[str]],
    seq_len: int,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    max_docs: int = 0,
    max_tokens: int = 0,
) -> dict[str, Any]:
    """:func:`evaluate_heldout` on raw texts, tokenized with ``tokenizer`` (its ``bos_id`` is prepended)."""
    docs = {d: texts_to_docs(tokenizer, texts) for d, texts in texts_by_domain.items()}
    return evaluate_heldout(model, docs, seq_len, batch_size, device, getattr(tokenizer, "bos_id", None),
                            max_docs, max_tokens)


def metrics_row(result: Mapping[str, Any]) -> dict[str, float]:
    """The ``"eval"`` metrics.jsonl fields of a result: val_loss, val_bpb and per-domain variants."""
    row = {"val_loss": result["overall"]["loss"], "val_bpb": result["overall"]["bits_per_byte"]}
    for name, r in result["domains"].items():
        row[f"val_loss/{name}"] = r["loss"]
        row[f"val_bpb/{name}"] = r["bits_per_byte"]
    return row


# ----------------------------------------------------------------------------------------- shards

def load_split_docs(tokens_dir: str | Path, split: str = "val", max_docs: int = 0,
                    max_tokens: int = 0) -> dict[str, list[HeldoutDoc]]:
    """Held-out documents per domain from token shards, capped as :func:`select_docs` does.

    Reads ``tokens_dir/<split>/<domain>/`` through :func:`pretrain.data.shards.load_split`; only the
    selected documents are read from the memory-mapped shards, so the caps also bound the I/O.
    """
    from pretrain.data.shards import load_split

    path = Path(tokens_dir)
    if not (path / split).is_dir():
        raise FileNotFoundError(f"no {split}/ split in token directory {path}")
    out: dict[str, list[HeldoutDoc]] = {}
    for domain, shards in sorted(load_split(path, split).items()):
        n = shards.num_docs
        idx = range(n)
        if max_docs and n > max_docs:
            idx = np.linspace(0, n - 1, max_docs).round().astype(int).tolist()
        docs, total = [], 0
        for i in idx:
            toks = np.asarray(shards.doc_tokens(i))
            if max_tokens and docs and total + len(toks) > max_tokens:
                break
            docs.append(HeldoutDoc(toks, int(shards.doc_bytes(i)), str(shards.doc_source(i))))
            total += len(toks)
        out[domain] = docs
    if not out:
        raise FileNotFoundError(f"no domains under {path / split}")
    return out


def token_counts(token_arrays: Iterable[Sequence[int] | np.ndarray], vocab_size: int) -> np.ndarray:
    """Occurrences of every token id over the given arrays (length ``vocab_size``)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for arr in token_arrays:
        a = np.asarray(arr, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() >= vocab_size):
            raise ValueError(f"token id outside 0..{vocab_size - 1} while counting unigrams")
        counts += np.bincount(a, minlength=vocab_size)
    return counts


def split_token_counts(tokens_dir: str | Path, vocab_size: int, split: str = "train",
                       max_tokens_per_domain: int = 0) -> dict[str, np.ndarray]:
    """Unigram counts per domain of a shard split (optionally only the first ``max_tokens_per_domain``)."""
    from pretrain.data.shards import load_split

    out = {}
    for domain, shards in sorted(load_split(Path(tokens_dir), split).items()):
        def chunks(shards=shards, step=1 << 22):
            # Whole shards in fixed-size slices of the flat token memmap: no per-document Python loop.
            left = max_tokens_per_domain or None
            for flat in shards.views:
                for start in range(0, len(flat), step):
                    part = flat[start:start + step] if left is None else flat[start:start + min(step, left)]
                    yield part
                    if left is not None:
                        left -= len(part)
                        if left <= 0:
                            return
        out[domain] = token_counts(chunks(), vocab_size)
    return out


def unigram_bits_per_byte(
    train_counts: np.ndarray | Mapping[str, np.ndarray],
    docs_by_domain: Mapping[str, Sequence[HeldoutDoc]],
    vocab_size: int | None = None,
    max_docs: int = 0,
    max_tokens: int = 0,
) -> dict[str, Any]:
    """Bits per byte of an add-one-smoothed unigram model fitted on training token counts.

    ``train_counts`` is one count vector or one per domain (summed: the model is fitted on the whole
    training mixture). p(t) = (c_t + 1) / (N + V). Scored on the same tokens and bytes as
    :func:`evaluate_heldout` (the document tokens; BOS is context, EOS unscored), so the numbers are
    directly comparable: a model that beats this has learned more than token frequencies.
    """
    counts = (sum(np.asarray(c, dtype=np.float64) for c in train_counts.values())
              if isinstance(train_counts, Mapping) else np.asarray(train_counts, dtype=np.float64))
    vocab = int(vocab_size or len(counts))
    if len(counts) > vocab:
        raise ValueError(f"unigram counts have {len(counts)} entries but vocab_size is {vocab}")
    counts = np.pad(counts, (0, vocab - len(counts)))
    logp = np.log(counts + 1.0) - math.log(counts.sum() + vocab)
    domains = {}
    tot = [0.0, 0, 0, 0]
    for name in sorted(docs_by_domain):
        docs = select_docs(docs_by_domain[name], max_docs, max_tokens)
        c = token_counts((d.tokens for d in docs), vocab)
        nats = -float((c * logp).sum())
        n_tok, n_bytes = int(c.sum()), sum(int(d.n_bytes) for d in docs)
        domains[name] = summarize(nats, n_tok, n_bytes, len(docs))
        for i, v in enumerate((nats, n_tok, n_bytes, len(docs))):
            tot[i] += v
    return {"domains": domains, "overall": summarize(*tot), "train_tokens": int(counts.sum()), "vocab_size": vocab}
