"""Loaders for the offline task data next to this file (no network, no Hugging Face cache).

lm-eval calls ``custom_dataset`` with the task metadata and dataset kwargs; each loader reads its
JSONL file relative to this directory, so the task works from any working directory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent


def _load(name: str):
    import datasets

    path = HERE / name
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no records")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_ppl(**kwargs):
    return _load("ppl.jsonl")


def load_mc(**kwargs):
    return _load("mc.jsonl")


def load_gen(**kwargs):
    return _load("gen.jsonl")


def ppl_results(doc, results):
    """Word and byte perplexity and bits per byte of the whole text (as lm-eval's wikitext does)."""
    (loglikelihood,) = results
    words = len(re.split(r"\s+", doc["text"]))
    n_bytes = len(doc["text"].encode("utf-8"))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
