"""MinHash signatures (Broder 1997) vectorized with NumPy over whole batches of documents, and LSH
banding (Leskovec et al., MMDS ch. 3).

Shingles are word n-grams of lower-cased alphanumeric words (:func:`pretrain.data.curate.rules.text.norm_words`).
A batch of documents is shingled with a constant number of NumPy passes, never a Python loop per word:

1. the documents are joined into one byte buffer (an ASCII text as it is; any other text as its
   ``norm_words`` joined by spaces, so Unicode word rules stay exactly those of ``re``'s ``\\w``), lower-
   cased with ``bytes.lower``; a word is a maximal run of bytes in ``[a-z0-9_]`` or ``>= 0x80``, which for
   ASCII text is exactly ``\\w``;
2. every word is hashed at once with a polynomial hash over its bytes: ``sum b_j P^j`` over the word's
   bytes (one ``add.reduceat`` over the buffer with non-word bytes zeroed), scaled back by ``P^-start``
   (position-independent, wrapping mod 2^64), then mixed with MurmurHash3's 64-bit finalizer;
3. an n-gram hash is a polynomial combination of its word hashes, for all positions at once; n-grams that
   would cross a document boundary are dropped; a document with fewer than n words has one shingle of
   all its words.

The ``num_perm`` hash functions are ``h = a*x + b mod 2^32`` (a odd: a permutation of 32-bit values) on
the already well-mixed 32-bit shingle hashes. They are evaluated as a [permutations x shingles] uint32
array per block of ~8k shingles (long contiguous rows: NumPy's SIMD loops; a [shingles x permutations]
layout runs 112-element inner loops and was 4x slower), and a ``minimum.reduceat`` per document. The
minimum only depends on the top bits of ``h``, so an extra xor-shift mixing high bits into low ones (the
earlier family) changed almost no minimum and cost half the time; the recall/precision test in
tests/data/curate pins that this family separates near duplicates. Why NumPy rather than a library: it is
already a dependency, it is vectorized, and the signatures stay plain arrays that can be written to
disk for the on-disk LSH index.

Two documents with Jaccard similarity s collide in at least one of b bands of r rows with probability
1 - (1 - s^r)^b; candidates are then verified with the signature estimate of Jaccard similarity.
"""

from __future__ import annotations

import numpy as np

from pretrain.data.curate.rules.text import norm_words

_U64 = np.uint64
_BASE = 0x100000001B3  # polynomial base of the word hash (odd, so invertible mod 2^64)
_BASE_INV = pow(_BASE, -1, 1 << 64)
_NGRAM = _U64(1_000_003)
_BLOCK = 8192  # shingles per block of the signature: [num_perm x block] uint32 stays in cache (3.7 MB)
# bytes.translate table: 1 for a word byte, 0 otherwise. Bytes of non-ASCII characters are only ever
# inside words (see step 1 above). translate runs in C at memory speed; a NumPy table lookup did not.
_WORD_BYTES = bytes(1 if (c >= 0x80 or chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789_") else 0
                    for c in range(256))
_WORD_BYTES_KEPT = bytes(c if _WORD_BYTES[c] else 0 for c in range(256))  # word bytes kept, others 0


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer, in place: every input bit affects every output bit."""
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


class _Powers:
    """P^j and P^-j mod 2^64 for j < n, grown by doubling and kept (one shard reuses them per batch)."""

    def __init__(self) -> None:
        self.fwd = np.ones(0, dtype=np.uint64)
        self.inv = np.ones(0, dtype=np.uint64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.fwd) < n:
            size = max(n, 2 * len(self.fwd), 1 << 16)
            with np.errstate(over="ignore"):
                self.fwd = np.cumprod(np.full(size, _BASE, dtype=np.uint64)) * _U64(_BASE_INV)  # P^0..
                self.inv = np.cumprod(np.full(size, _BASE_INV, dtype=np.uint64)) * _U64(_BASE)
        return self.fwd[:n], self.inv[:n]


def _word_text(text: str) -> str:
    """The text whose byte-level words are exactly ``norm_words(text)`` (see the module docstring)."""
    return text if text.isascii() else " ".join(norm_words(text))


class MinHasher:
    def __init__(self, num_perm: int = 112, shingle: int = 5, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
        self.b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32)
        self.num_perm = num_perm
        self.shingle = shingle
        self.powers = _Powers()

    def shingle_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes of many documents: (uint32 hashes, document by document in order, repeats
        kept; the number of them per document). Repeats do not change a minimum, so none are removed."""
        parts = [_word_text(t) for t in texts]
        blen = np.fromiter((len(p) if p.isascii() else len(p.encode("utf-8", "surrogatepass")) for p in parts),
                           dtype=np.int64, count=len(parts))
        raw = "\n".join(parts).encode("utf-8", "surrogatepass").lower()
        doc_start = np.zeros(len(parts), dtype=np.int64)
        np.cumsum(blen[:-1] + 1, out=doc_start[1:])
        # a word starts at a word byte after a non-word byte (the sums below need no word ends)
        start = np.flatnonzero(np.diff(np.frombuffer(b"\0" + raw.translate(_WORD_BYTES), dtype=np.int8)) == 1)
        fwd, inv = self.powers.get(len(raw))
        if len(start):  # each word's sum of b_j P^j: a sum from its start to the next word's start,
            # over the bytes with every non-word byte zeroed (wrapping mod 2^64 on purpose)
            word_bytes = np.frombuffer(raw.translate(_WORD_BYTES_KEPT), dtype=np.uint8)
            words = _fmix64(np.add.reduceat(word_bytes * fwd, start) * inv[start])
        else:
            words = np.zeros(0, dtype=np.uint64)
        doc = np.searchsorted(doc_start, start, side="right") - 1
        counts = np.bincount(doc, minlength=len(parts))
        n = self.shingle
        m = len(words) - n + 1
        if m > 0:
            h = np.zeros(m, dtype=np.uint64)
            for k in range(n):  # polynomial combination of n consecutive word hashes, wrapping mod 2^64
                h = h * _NGRAM + words[k: m + k]
            same = doc[:m] == doc[n - 1:]
            h, hdoc = h[same], doc[:m][same]
        else:
            h, hdoc = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        short = np.flatnonzero((counts > 0) & (counts < n))
        if len(short):  # fewer words than n: one shingle of all of them (rare; a loop over those only)
            first = np.concatenate([[0], np.cumsum(counts)])
            extra = np.zeros(len(short), dtype=np.uint64)
            for k in range(n - 1):
                take = counts[short] > k
                extra[take] = extra[take] * _NGRAM + words[first[short[take]] + k]
            order = np.argsort(np.concatenate([hdoc, short]), kind="stable")
            h, hdoc = np.concatenate([h, extra])[order], np.concatenate([hdoc, short])[order]
        h ^= h >> _U64(29)
        return h.astype(np.uint32), np.bincount(hdoc, minlength=len(parts))

    def shingles(self, text: str) -> np.ndarray:
        """The distinct shingle hashes of one document, sorted."""
        return np.unique(self.shingle_batch([text])[0])

    def signature(self, text: str) -> np.ndarray:
        """uint32 signature of length num_perm (all 0xFFFFFFFF for a text without words)."""
        return self.signatures_of(*self.shingle_batch([text]))[0]

    def signatures_of(self, flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """[documents, num_perm] signatures from :meth:`shingle_batch`'s output. The shingles are cut
        into blocks of ``_BLOCK`` whatever the document boundaries; a document spanning two blocks gets
        the minimum of both parts."""
        out = np.full((len(counts), self.num_perm), 0xFFFFFFFF, dtype=np.uint32)
        ends = np.cumsum(counts)
        nz = np.flatnonzero(counts)
        nz_start, nz_end = ends[nz] - counts[nz], ends[nz]
        a, b = self.a[:, None], self.b[:, None]
        for c0 in range(0, len(flat), _BLOCK):
            c1 = min(len(flat), c0 + _BLOCK)
            lo, hi = np.searchsorted(nz_end, c0, side="right"), np.searchsorted(nz_start, c1, side="left")
            hv = a * flat[None, c0:c1]  # wraps mod 2^32
            hv += b
            part = np.minimum.reduceat(hv, np.maximum(nz_start[lo:hi], c0) - c0, axis=1).T
            docs = nz[lo:hi]
            out[docs] = np.minimum(out[docs], part)
        return out

    def signatures(self, texts: list[str]) -> np.ndarray:
        """[len(texts), num_perm] signatures of many documents at once."""
        return self.signatures_of(*self.shingle_batch(texts))


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """[n, bands] uint64 hash of each band's rows of each signature (FNV-1a style mixing on words)."""
    n = sigs.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    s = sigs.astype(np.uint64)
    for b in range(bands):
        h = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
        for r in range(rows):
            h = (h ^ s[:, b * rows + r]) * np.uint64(0x100000001B3)
        out[:, b] = h ^ np.uint64(b)
    return out


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def collision_probability(s: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - s**rows) ** bands
