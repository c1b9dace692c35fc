"""One domain's endless token stream: documents in a seeded order per epoch, rendered on demand.

The stream of a domain is the same sequence of tokens for every process of a run: every document of
the domain, in a seeded random order per epoch, each written ``BOS body EOS`` (the body FIM-permuted
for the chosen fraction, which adds three sentinel tokens). A position in it is (epoch, permutation
position of a document, offset inside it).

Two ways to move along it:
- ``take_packed`` / ``take_padded`` render the tokens (slices of the memory-mapped shards, FIM) and
  return them;
- ``skip`` / ``skip_padded`` move past tokens another rank reads, from document *lengths* only
  (``shards.lengths`` and the FIM decision, which is a hash): no token of a skipped row is read or
  copied. This is what lets each rank of a data-parallel run read only its share of the stream.
Rendering stops exactly where asked, inside a document if need be, and resumes there, so a document
split between ranks' rows is read by each rank only as far as its own rows go.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pretrain.data.fim import FIMTokens, fim_permute, hash_uniform
from pretrain.data.shards import ShardSet


@dataclass(frozen=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    fim_prefix: int | None = None
    fim_middle: int | None = None
    fim_suffix: int | None = None

    @classmethod
    def of(cls, tok) -> SpecialIds:
        """From a :class:`pretrain.tokenizer.Tokenizer` (or anything with the same ``*_id`` attributes)."""
        return cls(tok.bos_id, tok.eos_id, tok.pad_id, tok.fim_prefix_id, tok.fim_middle_id, tok.fim_suffix_id)


def domain_key(domain: str) -> int:
    return zlib.crc32(domain.encode("utf-8"))


def _slice(pieces: list[np.ndarray], start: int, stop: int) -> list[np.ndarray]:
    """Tokens ``start:stop`` of the concatenation of ``pieces``, as views (nothing is copied)."""
    out, at = [], 0
    for piece in pieces:
        a, b = max(start - at, 0), min(stop - at, len(piece))
        if a < b:
            out.append(piece[a:b])
        at += len(piece)
        if at >= stop:
            break
    return out


class DomainStream:
    """One domain's stream, rendered into a buffer ``chunk_tokens`` at a time (1 = only what is asked for).

    ``doc_end[k]`` is where buffered document k ends in ``buf`` (exclusive), so document membership of
    any position is one ``searchsorted`` away and no per-token bookkeeping array is needed. The buffer
    begins at a document start, or ``head`` tokens into its first document after a :meth:`reset` into
    the middle of one (a resumed run or a rank that skipped there renders nothing before its position).
    """

    def __init__(self, shards: ShardSet, domain: str, seed: int, special: SpecialIds, fim_rate: float,
                 spm_rate: float, chunk_tokens: int):
        self.shards = shards
        self.domain = domain
        self.key = domain_key(domain)
        self.seed = seed
        self.docs = np.arange(shards.num_docs, dtype=np.int64)
        if len(self.docs) == 0:
            raise ValueError(f"{shards.dir}: domain '{domain}' has no documents")
        self.stream_tokens = int(shards.lengths.sum()) + 2 * len(self.docs)  # one epoch (without FIM)
        self._mean_doc = self.stream_tokens / len(self.docs)
        self.special = special
        self.fim_rate = fim_rate
        self.spm_rate = spm_rate
        self.chunk_tokens = chunk_tokens
        self._fim_ids = (FIMTokens(special.fim_prefix, special.fim_middle, special.fim_suffix)
                         if fim_rate > 0 else None)
        self._bos = np.array([special.bos], dtype=np.int64)
        self._eos = np.array([special.eos], dtype=np.int64)
        self.tokens_served = 0
        """Stream tokens consumed, read or skipped (so the same on every rank of a run)."""
        self.tokens_read = 0
        """Tokens rendered from the shards by this process (what per-rank reading saves)."""
        self._perm_epoch = -1
        self.reset(epoch=0, ppos=0, offset=0)

    # -- position and state ---------------------------------------------------------------------------
    def reset(self, epoch: int, ppos: int, offset: int) -> None:
        """Position the stream at ``offset`` tokens into the document at permutation position ``ppos``."""
        self.epoch = epoch
        self.cursor = ppos  # next permutation position to render into the buffer
        self.buf = np.zeros(0, dtype=np.int64)
        self.doc_end = np.zeros(0, dtype=np.int64)  # per buffered document: end offset in buf
        self.doc_global = np.zeros(0, dtype=np.int64)  # per buffered document: index in the ShardSet
        self.doc_epoch = np.zeros(0, dtype=np.int64)
        self.doc_ppos = np.zeros(0, dtype=np.int64)
        self.pos = 0
        self.head = 0  # tokens of the first buffered document that lie before buf[0]
        if offset:  # register that document, nothing rendered: _ensure renders it from ``offset`` on
            self.doc_end = np.array([int(self.doc_lengths(epoch, ppos, 1)[0]) - offset], dtype=np.int64)
            self.doc_global = self._perm(epoch)[ppos:ppos + 1].copy()
            self.doc_epoch, self.doc_ppos = np.array([epoch]), np.array([ppos])
            self.head = offset
            self.epoch, self.cursor = self._next_doc(epoch, ppos)

    def _doc_at(self, position: int) -> int:
        """Index (in the buffer's document list) of the document holding buffer ``position``."""
        return int(np.searchsorted(self.doc_end, position, side="right"))

    def position(self) -> tuple[int, int, int]:
        """(epoch, permutation position, offset) of the read position, without rendering anything."""
        if len(self.doc_end) and self.pos < self.doc_end[-1]:  # inside a registered document
            k = self._doc_at(self.pos)
            start = int(self.doc_end[k - 1]) if k > 0 else -self.head
            return int(self.doc_epoch[k]), int(self.doc_ppos[k]), self.pos - start
        return self.epoch, self.cursor, 0  # at the start of the next unregistered document

    def state(self) -> dict:
        """Where the read position is: (epoch, permutation position, offset) of its document."""
        epoch, ppos, offset = self.position()
        return {"epoch": epoch, "ppos": ppos, "offset": offset, "tokens_served": self.tokens_served}

    def _perm(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            rng = np.random.default_rng([self.seed, self.key, epoch])
            self._perm_cache = self.docs[rng.permutation(len(self.docs))]
            self._perm_epoch = epoch
        return self._perm_cache

    def order(self, epoch: int) -> np.ndarray:
        """The documents (ShardSet indices) of ``epoch`` in stream order: permutation position -> document.
        Lineage tracing (pretrain.lineage) maps positions to documents and back with it."""
        return self._perm(epoch)

    def _fim_chosen(self, ppos: np.ndarray, epoch: int) -> np.ndarray:
        return hash_uniform(ppos, self.seed, self.key, epoch, 0) < self.fim_rate

    def doc_lengths(self, epoch: int, ppos: int, count: int) -> np.ndarray:
        """Stream lengths (BOS + body + EOS, + 3 for FIM) of up to ``count`` documents from ``ppos`` on,
        within one epoch, from the shard index alone."""
        perm = self._perm(epoch)
        at = np.arange(ppos, min(ppos + count, len(perm)), dtype=np.int64)
        lengths = self.shards.lengths[perm[at]].astype(np.int64) + 2
        if self._fim_ids is not None:
            lengths += 3 * self._fim_chosen(at, epoch)
        return lengths

    # -- filling --------------------------------------------------------------------------------------
    def _ensure(self, need: int) -> None:
        """Make sure ``need`` tokens are buffered from the read position on.

        Renders ``max(need, chunk_tokens)`` tokens, stopping inside a document when that is where the
        count ends: the registered documents may end past the buffer (``doc_end[-1] > len(buf)``), and
        the next call renders the rest of the last one first. So a rank reads no more of a document
        than its rows hold, and a resumed stream none of the document before its position.
        """
        if len(self.buf) - self.pos >= need:
            return
        self._compact()
        pieces, ends, glob, epochs, pposs = [self.buf], [self.doc_end], [self.doc_global], [self.doc_epoch], [
            self.doc_ppos]
        base = len(self.buf)
        target = max(need - (base - self.pos), self.chunk_tokens)
        got = 0
        tail = int(self.doc_end[-1]) - base if len(self.doc_end) else 0
        if tail > 0:  # the rest of the last registered document (FIM permutes the whole body again)
            doc_pieces, lengths = self._render(self.doc_global[-1:], self.doc_ppos[-1:], int(self.doc_epoch[-1]))
            length = int(lengths[0])
            got = min(tail, target)
            pieces.extend(_slice(doc_pieces, length - tail, length - tail + got))
        while got < target:
            perm = self._perm(self.epoch)
            # each document takes >= 2 stream tokens, so no more than this many can be needed
            window = perm[self.cursor:self.cursor + (target - got) // 2 + 1]
            k = int(np.searchsorted(np.cumsum(self.shards.lengths[window] + 2), target - got)) + 1
            k = min(k, len(perm) - self.cursor)
            ppos = np.arange(self.cursor, self.cursor + k, dtype=np.int64)
            docs = perm[self.cursor:self.cursor + k]
            doc_pieces, lengths = self._render(docs, ppos)
            doc_ends = np.cumsum(lengths)
            total = int(doc_ends[-1])
            keep = min(total, target - got)  # stop inside a document when the count ends there
            if keep < total:  # register only the documents up to the one the cut falls in
                k = int(np.searchsorted(doc_ends, keep, side="left")) + 1
                docs, ppos, doc_ends = docs[:k], ppos[:k], doc_ends[:k]
                first = int(doc_ends[-2]) if k > 1 else 0  # where the cut document starts
                doc_pieces = doc_pieces[:3 * (k - 1)] + _slice(doc_pieces[3 * (k - 1):3 * k], 0, keep - first)
            pieces.extend(doc_pieces)
            ends.append(base + got + doc_ends)  # true ends, the last one possibly past the buffer
            glob.append(docs)
            epochs.append(np.full(k, self.epoch, dtype=np.int64))
            pposs.append(ppos)
            got += keep
            self.cursor += k
            if self.cursor >= len(perm):
                self.epoch += 1
                self.cursor = 0
        self.tokens_read += got
        self.buf = np.concatenate(pieces, dtype=np.int64)  # the one copy of every token into the buffer
        self.doc_end = np.concatenate(ends)
        self.doc_global = np.concatenate(glob)
        self.doc_epoch = np.concatenate(epochs)
        self.doc_ppos = np.concatenate(pposs)

    def _compact(self) -> None:
        """Drop buffered documents that end before the read position."""
        keep = self._doc_at(self.pos)
        if keep == 0:
            return
        start = int(self.doc_end[keep - 1])
        self.head = 0
        self.buf = self.buf[start:]
        self.doc_end = self.doc_end[keep:] - start
        self.doc_global = self.doc_global[keep:]
        self.doc_epoch = self.doc_epoch[keep:]
        self.doc_ppos = self.doc_ppos[keep:]
        self.pos -= start

    def _render(self, docs: np.ndarray, ppos: np.ndarray, epoch: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Documents -> pieces ``BOS, body, EOS`` each (body FIM-permuted for the chosen ones), and lengths.

        One slice per document out of the memory-mapped shard (no copy yet; the caller concatenates
        once): per document Python work only (about a microsecond), nothing per token.
        """
        sh = self.shards
        views, shard_of, starts, lens = sh.views, sh.shard_of[docs].tolist(), sh.starts[docs].tolist(), sh.lengths[
            docs]
        bodies = [views[k][s:s + n] for k, s, n in zip(shard_of, starts, lens.tolist(), strict=True)]
        lengths = lens + 2
        epoch = self.epoch if epoch is None else epoch
        if self._fim_ids is not None:
            chosen = np.nonzero(self._fim_chosen(ppos, epoch))[0]
            if len(chosen):
                cuts = [hash_uniform(ppos[chosen], self.seed, self.key, epoch, s) for s in (1, 2, 3)]
                for j, i in enumerate(chosen.tolist()):
                    bodies[i] = fim_permute(bodies[i], cuts[0][j], cuts[1][j], bool(cuts[2][j] < self.spm_rate),
                                            self._fim_ids)
                lengths[chosen] += 3
        bos, eos = self._bos, self._eos
        return [x for body in bodies for x in (bos, body, eos)], lengths

    # -- skipping (another rank's rows) ---------------------------------------------------------------
    def _next_doc(self, epoch: int, ppos: int) -> tuple[int, int]:
        ppos += 1
        return (epoch + 1, 0) if ppos >= len(self.docs) else (epoch, ppos)

    def skip(self, n: int) -> int:
        """Move the read position ``n`` tokens on (what ``take_packed`` of n / T rows would consume).

        Returns the number of document ends in the skipped span (read position, read position + n]:
        each is one target the packed rows would have ignored (the EOS -> next BOS crossing).
        """
        self.tokens_served += n
        if len(self.buf) - self.pos > n:  # already buffered: stay inside the buffer
            ends = int(np.searchsorted(self.doc_end, self.pos + n, side="right") - self._doc_at(self.pos))
            self.pos += n
            return ends
        epoch, ppos, offset = self.position()
        n += offset  # counted from the start of the current document (whose end lies beyond offset)
        crossed = 0
        while True:
            lengths = self.doc_lengths(epoch, ppos, max(16, int(2 * n / self._mean_doc) + 1))
            ends = np.cumsum(lengths)
            if ends[-1] > n:  # the position lands inside one of these documents
                j = int(np.searchsorted(ends, n, side="right"))
                self.reset(epoch, ppos + j, n - (int(ends[j - 1]) if j else 0))
                return crossed + j
            n -= int(ends[-1])
            crossed += len(lengths)
            epoch, ppos = self._next_doc(epoch, ppos + len(lengths) - 1)

    def skip_padded(self, rows: int, seq_len: int) -> int:
        """Move past ``rows`` rows of ``take_padded``; returns their real (non-PAD) input positions."""
        epoch, ppos, offset = self.position()
        length = int(self.doc_lengths(epoch, ppos, 1)[0])
        real = 0
        for _ in range(rows):
            while length - offset <= 1:  # only the EOS is left: it was already a target
                epoch, ppos = self._next_doc(epoch, ppos)
                offset, length = 0, int(self.doc_lengths(epoch, ppos, 1)[0])
            remaining = length - offset
            n = min(remaining, seq_len + 1)
            offset += n if n == remaining else seq_len
            real += n - 1
        if offset >= length:
            epoch, ppos = self._next_doc(epoch, ppos)
            offset = 0
        self.tokens_served += real
        self.reset(epoch, ppos, offset)
        return real

    # -- reading --------------------------------------------------------------------------------------
    def take_packed(self, rows: int, seq_len: int, doc_mask: bool):
        """``rows`` windows of ``seq_len + 1`` tokens, consecutive windows sharing one token.

        Returns (windows [rows, T+1] view, document starts as offsets into the span or None, first and
        last buffered-document index per row). Offset c is row c // T, column c % T; column 0 is also
        column T of the previous row (the shared token).
        """
        T = seq_len
        span = rows * T + 1
        self._ensure(span)
        p = self.pos
        chunk = self.buf[p:p + span]
        win = np.lib.stride_tricks.as_strided(chunk, shape=(rows, T + 1), strides=(T * chunk.itemsize, chunk.itemsize),
                                              writeable=False)
        row_start = p + np.arange(rows, dtype=np.int64) * T
        first = np.searchsorted(self.doc_end, row_start, side="right")
        last = np.searchsorted(self.doc_end, row_start + T - 1, side="right")
        starts: list[int] | None = None
        if doc_mask:  # offsets of the document starts inside the span (never 0), ascending; a few per row
            k0, k1 = int(first[0]), int(np.searchsorted(self.doc_end, p + span - 1, side="right"))
            starts = (self.doc_end[k0:k1] - p).tolist()
        self.pos += rows * T
        self.tokens_served += rows * T
        return win, starts, first, last

    def take_padded(self, seq_len: int) -> tuple[np.ndarray, int]:
        """One document (or the next ``seq_len + 1`` tokens of a long one): (tokens, buffered-doc index)."""
        while True:
            self._ensure(seq_len + 1)
            k = self._doc_at(self.pos)
            remaining = int(self.doc_end[k]) - self.pos
            if remaining <= 1:  # only the EOS is left: it was already a target
                self.pos += remaining
                continue
            n = min(remaining, seq_len + 1)
            toks = self.buf[self.pos:self.pos + n]
            self.pos += n if n == remaining else seq_len  # a cut document resumes at its last target
            self.tokens_served += n - 1
            return toks, k

    def lineage(self, first: int, last: int) -> list[tuple[str, int]]:
        """(shard path, index in shard) of buffered documents first..last."""
        g = self.doc_global[first:last + 1]
        paths = self.shards.shard_paths
        return [(paths[s], i) for s, i in zip(self.shards.shard_of[g].tolist(), self.shards.local_index[g].tolist(),
                                                strict=True)]
