"""Fill-in-the-middle (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in the Middle").

A chosen fraction of documents is cut at two uniformly random points into prefix, middle and suffix
and reordered so that a left-to-right model learns to produce the middle given both sides:

    PSM:  <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle
    SPM:  <fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle

SPM is the variant of the paper's section 3 / appendix D (the prefix moves next to the middle, so the
two join seamlessly). The paper finds a FIM rate of 0.5 costs no left-to-right ability and recommends
mixing PSM and SPM (joint training). The cut is made on token boundaries (the shards hold tokens, not
text); the loader then wraps the result in BOS ... EOS like any document, so the EOS marks the end of
the middle. Randomness is counter-based (a hash of seed, domain, epoch and document position), so a
document gets the same transform however the stream is chunked, which makes loader resumption exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


_MASK = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser (Steele et al. 2014): a fast, well-mixed 64-bit hash, vectorized."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _splitmix64_int(x: int) -> int:
    """The same finaliser on a Python int (for mixing the few keys without numpy scalar overhead)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def hash_uniform(counter: np.ndarray, *keys: int) -> np.ndarray:
    """Uniform floats in [0, 1), one per ``counter`` entry, fully determined by ``keys`` and the counter."""
    h = 0
    for k in keys:
        h = _splitmix64_int(h ^ (int(k) & _MASK))
    with np.errstate(over="ignore"):
        x = _splitmix64(np.asarray(counter, dtype=np.uint64) ^ np.uint64(h))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class FIMTokens:
    prefix: int
    middle: int
    suffix: int


def fim_permute(tokens: np.ndarray, cut_a: float, cut_b: float, spm: bool, ids: FIMTokens) -> np.ndarray:
    """Reorder one document's tokens into PSM or SPM form; ``cut_a``/``cut_b`` are uniforms in [0, 1)."""
    n = len(tokens)
    a, b = sorted((int(cut_a * (n + 1)), int(cut_b * (n + 1))))
    prefix, middle, suffix = tokens[:a], tokens[a:b], tokens[b:]
    out = np.empty(n + 3, dtype=tokens.dtype)
    if spm:
        out[0], out[1] = ids.prefix, ids.suffix
        out[2:2 + len(suffix)] = suffix
        k = 2 + len(suffix)
        out[k] = ids.middle
        out[k + 1:k + 1 + a] = prefix
        out[k + 1 + a:] = middle
    else:
        out[0] = ids.prefix
        out[1:1 + a] = prefix
        out[1 + a] = ids.suffix
        out[2 + a:2 + a + len(suffix)] = suffix
        k = 2 + a + len(suffix)
        out[k] = ids.middle
        out[k + 1:] = middle
    return out


def fim_inverse(tokens: np.ndarray, ids: FIMTokens) -> np.ndarray:
    """Recover the original document from a PSM or SPM sequence (for tests and inspection)."""
    t = list(map(int, tokens))
    if t[0] != ids.prefix:
        raise ValueError("not a FIM sequence (does not start with <fim_prefix>)")
    s, m = t.index(ids.suffix), t.index(ids.middle)
    if s == 1:  # SPM: the suffix comes first, then prefix+middle (their split is not recoverable, nor needed)
        suffix, rest = t[2:m], t[m + 1:]
        return np.asarray(rest + suffix, dtype=tokens.dtype)
    prefix, suffix, middle = t[1:s], t[s + 1:m], t[m + 1:]
    return np.asarray(prefix + middle + suffix, dtype=tokens.dtype)
