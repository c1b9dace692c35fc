"""Memorization audit: does greedy decoding reproduce training documents verbatim?

Following Carlini et al. ("Quantifying Memorization Across Neural Language Models", 2022): sample
training documents through the shard lineage index, give the model ``prefix_tokens`` of a document
(from a random offset; BOS first when the offset is 0, as in training), and check whether its greedy
continuation equals the next ``continuation_tokens`` tokens. The check runs teacher-forced in one
batched pass: greedy decoding reproduces the continuation exactly iff every continuation token is the
argmax given the true prefix, and the leading run of argmax hits is the number of tokens greedy decoding
gets right before it first diverges.

The same procedure on held-out documents is the control: text that is merely predictable (licence
headers, boilerplate) matches there too, so memorization proper is the excess of train over held-out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrain.eval.generation import context_limit
from pretrain.eval.scoring import score_sequences


def _sample(shards: Any, k: int, need: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    lengths = np.asarray(shards.lengths if hasattr(shards, "lengths")
                         else [len(shards.doc_tokens(i)) for i in range(shards.num_docs)])
    eligible = np.nonzero(lengths >= need)[0]
    if not len(eligible):
        return []
    docs = np.sort(rng.choice(eligible, size=min(k, len(eligible)), replace=False))
    return [(int(d), int(rng.integers(0, lengths[d] - need + 1))) for d in docs]


def audit_split(model: torch.nn.Module, split: Mapping[str, Any], prefix_tokens: int = 32,
                continuation_tokens: int = 32, docs_per_domain: int = 32, seed: int = 0,
                bos_id: int | None = None, batch_size: int = 8, device: str | torch.device | None = None,
                max_examples: int = 10) -> dict[str, Any]:
    """Per-domain exact-match rate of greedy continuations of ``{domain: ShardSet}`` documents."""
    need = prefix_tokens + continuation_tokens
    limit = context_limit(model)
    if limit and need + 1 > limit:
        raise ValueError(f"memorization prefix_tokens + continuation_tokens = {need} (+1 for BOS) exceeds the "
                         f"model context {limit}")
    out: dict[str, Any] = {}
    tot_exact = tot_n = 0
    for domain in sorted(split):
        shards = split[domain]
        rng = np.random.default_rng([seed, sum(domain.encode())])
        picks = _sample(shards, docs_per_domain, need, rng)
        seqs, starts = [], []
        for d, off in picks:
            toks = [int(t) for t in shards.doc_tokens(d)[off:off + need]]
            prefix = ([bos_id] if bos_id is not None and off == 0 else []) + toks[:prefix_tokens]
            seqs.append(prefix + toks[prefix_tokens:])
            starts.append(len(prefix))
        scored = score_sequences(model, seqs, starts, batch_size, device) if seqs else []
        exact, lead, acc, lp, examples = [], [], [], [], []
        for (d, off), s in zip(picks, scored, strict=True):
            ok = bool(s.greedy.all())
            exact.append(ok)
            miss = np.nonzero(~s.greedy)[0]
            lead.append(int(miss[0]) if len(miss) else len(s.greedy))
            acc.append(float(s.greedy.mean()))
            lp.append(float(s.logprobs.mean()))
            if ok and len(examples) < max_examples:
                row = {"doc": d, "offset": off}
                if hasattr(shards, "lineage"):
                    row["shard"], row["shard_index"] = shards.lineage(d)
                if hasattr(shards, "doc_source"):
                    src = shards.doc_source(d)
                    row["id"], row["source"] = getattr(src, "id", ""), getattr(src, "source", str(src))
                examples.append(row)
        n = len(picks)
        out[domain] = {
            "samples": n,
            "exact_match_rate": float(np.mean(exact)) if n else float("nan"),
            "mean_matched_prefix_tokens": float(np.mean(lead)) if n else float("nan"),
            "token_accuracy": float(np.mean(acc)) if n else float("nan"),
            "mean_logprob": float(np.mean(lp)) if n else float("nan"),
            "memorized_examples": examples,
        }
        tot_exact += sum(exact)
        tot_n += n
    return {"domains": out, "overall": {"samples": tot_n,
                                        "exact_match_rate": tot_exact / tot_n if tot_n else float("nan")}}


def audit_memorization(model: torch.nn.Module, train: Mapping[str, Any], heldout: Mapping[str, Any] | None = None,
                       prefix_tokens: int = 32, continuation_tokens: int = 32, docs_per_domain: int = 32,
                       seed: int = 0, bos_id: int | None = None, batch_size: int = 8,
                       device: str | torch.device | None = None) -> dict[str, Any]:
    """Train-split memorization per domain, with the held-out split as control when given."""
    kw = dict(prefix_tokens=prefix_tokens, continuation_tokens=continuation_tokens, docs_per_domain=docs_per_domain,
              seed=seed, bos_id=bos_id, batch_size=batch_size, device=device)
    result: dict[str, Any] = {"prefix_tokens": prefix_tokens, "continuation_tokens": continuation_tokens,
                              "train": audit_split(model, train, **kw)}
    if heldout:
        result["heldout"] = audit_split(model, heldout, **kw)
        result["excess_exact_match"] = {
            d: result["train"]["domains"][d]["exact_match_rate"] - result["heldout"]["domains"][d]["exact_match_rate"]
            for d in result["train"]["domains"] if d in result["heldout"]["domains"]}
    return result


def save(result: Mapping[str, Any], out_dir: str | Path, name: str = "memorization") -> Path:
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return path
