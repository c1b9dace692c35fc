"""The packing loader: domain mixture -> fixed-length rows with document ids, FIM, exact resume.

Each domain is an endless *stream*: its documents (this rank's share) in a seeded random order per
epoch, each written ``BOS tokens EOS`` (after the FIM transform for the chosen fraction). A batch row
is drawn from one domain, chosen with the mixture weights at the current training progress, and takes
the next ``seq_len + 1`` tokens of that domain's stream; consecutive rows of a domain overlap by one
token, so every stream token is a target exactly once and nothing is thrown away (Llama 3 style
packing, ``pack=True``). ``doc_ids`` number the documents inside a row so attention can be masked per
document; the target that would cross a document boundary (EOS -> next BOS) is ignored (-100).
With ``pack=False`` a row holds one document (or a piece of a long one) padded with PAD.

Exact resume: the state is a handful of integers (batch counter, and per domain the epoch, position in
the epoch's permutation of the current document and the offset inside it). The document order and the
FIM decisions are functions of (seed, domain, epoch, position), and each batch's domain draw uses a
generator seeded by (seed, rank, batch index), so a restored loader produces exactly the batches the
uninterrupted one would have. Ranks own disjoint documents (document i belongs to rank i % world_size).

Everything per token is vectorized numpy (gathers from the memory-mapped shards); Python runs per
chunk of documents and per row only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from pretrain.data.fim import FIMTokens, fim_permute, hash_uniform
from pretrain.data.loader_config import LoaderConfig
from pretrain.data.mixture import Mixture
from pretrain.data.shards import ShardSet

IGNORE = -100
STATE_VERSION = 1


@dataclass
class Batch:
    input_ids: torch.Tensor
    """[B, T] int64 token ids."""
    targets: torch.Tensor
    """[B, T] int64 next-token targets; -100 = ignore (padding, document boundary)."""
    doc_ids: torch.Tensor
    """[B, T] int64 document index within the row; attention never crosses a change of id."""
    domains: list[str]
    """The domain of each row."""
    lineage: list[list[tuple[str, int]]]
    """Per row: (shard path, document index in that shard) of each document in it, in order."""

    @property
    def num_tokens(self) -> int:
        """Number of valid targets (what the loss averages over)."""
        return int((self.targets != IGNORE).sum())

    def cu_seqlens(self) -> torch.Tensor:
        """Cumulative document lengths over the flattened batch (int32), for varlen attention kernels."""
        d = self.doc_ids
        change = torch.ones_like(d, dtype=torch.bool)
        change[:, 1:] = d[:, 1:] != d[:, :-1]
        starts = torch.nonzero(change.reshape(-1), as_tuple=False).reshape(-1)
        return torch.cat([starts, torch.tensor([d.numel()])]).to(torch.int32)

    def to(self, device: str | torch.device, non_blocking: bool = False) -> Batch:
        move = {"non_blocking": non_blocking}
        return Batch(self.input_ids.to(device, **move), self.targets.to(device, **move),
                     self.doc_ids.to(device, **move), self.domains, self.lineage)


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


def _domain_key(domain: str) -> int:
    return zlib.crc32(domain.encode("utf-8"))


class _DomainStream:
    """One domain's endless token stream for one rank, rendered a chunk of documents at a time.

    The buffer ``buf`` always begins at a document start; ``doc_end[k]`` is where buffered document k
    ends (exclusive), so document membership of any position is one ``searchsorted`` away and no
    per-token bookkeeping array is needed.
    """

    def __init__(self, shards: ShardSet, domain: str, seed: int, rank: int, world_size: int,
                 special: SpecialIds, fim_rate: float, spm_rate: float, chunk_tokens: int):
        self.shards = shards
        self.domain = domain
        self.key = _domain_key(domain)
        self.seed = seed
        self.docs = np.arange(rank, shards.num_docs, world_size, dtype=np.int64)
        if len(self.docs) == 0:
            raise ValueError(f"{shards.dir}: domain '{domain}' has {shards.num_docs} documents, "
                             f"too few for rank {rank} of {world_size}")
        self.stream_tokens = int(shards.lengths[self.docs].sum()) + 2 * len(self.docs)  # one epoch
        self.special = special
        self.fim_rate = fim_rate
        self.spm_rate = spm_rate
        self.chunk_tokens = chunk_tokens
        self._fim_ids = (FIMTokens(special.fim_prefix, special.fim_middle, special.fim_suffix)
                         if fim_rate > 0 else None)
        self._bos = np.array([special.bos], dtype=np.int64)
        self._eos = np.array([special.eos], dtype=np.int64)
        self.tokens_served = 0
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
        if offset:
            self._ensure(offset + 1)
            self.pos = offset

    def _doc_at(self, position: int) -> int:
        """Index (in the buffer's document list) of the document holding buffer ``position``."""
        return int(np.searchsorted(self.doc_end, position, side="right"))

    def state(self) -> dict:
        """Where the read position is: (epoch, permutation position, offset) of its document."""
        self._ensure(1)
        k = self._doc_at(self.pos)
        start = int(self.doc_end[k - 1]) if k > 0 else 0
        return {"epoch": int(self.doc_epoch[k]), "ppos": int(self.doc_ppos[k]), "offset": self.pos - start,
                "tokens_served": self.tokens_served}

    def _perm(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            rng = np.random.default_rng([self.seed, self.key, epoch])
            self._perm_cache = self.docs[rng.permutation(len(self.docs))]
            self._perm_epoch = epoch
        return self._perm_cache

    # -- filling --------------------------------------------------------------------------------------
    def _ensure(self, need: int) -> None:
        """Make sure ``need`` tokens are buffered from the read position on."""
        if len(self.buf) - self.pos >= need:
            return
        self._compact()
        pieces, ends, glob, epochs, pposs = [self.buf], [self.doc_end], [self.doc_global], [self.doc_epoch], [
            self.doc_ppos]
        base = len(self.buf)
        target = max(need - (base - self.pos), self.chunk_tokens)
        got = 0
        while got < target:
            perm = self._perm(self.epoch)
            # each document takes >= 2 stream tokens, so no more than this many can be needed
            window = perm[self.cursor:self.cursor + (target - got) // 2 + 1]
            k = int(np.searchsorted(np.cumsum(self.shards.lengths[window] + 2), target - got)) + 1
            k = min(k, len(perm) - self.cursor)
            ppos = np.arange(self.cursor, self.cursor + k, dtype=np.int64)
            docs = perm[self.cursor:self.cursor + k]
            doc_pieces, lengths = self._render(docs, ppos)
            pieces.extend(doc_pieces)
            ends.append(base + got + np.cumsum(lengths))
            glob.append(docs)
            epochs.append(np.full(k, self.epoch, dtype=np.int64))
            pposs.append(ppos)
            got += int(lengths.sum())
            self.cursor += k
            if self.cursor >= len(perm):
                self.epoch += 1
                self.cursor = 0
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
        self.buf = self.buf[start:]
        self.doc_end = self.doc_end[keep:] - start
        self.doc_global = self.doc_global[keep:]
        self.doc_epoch = self.doc_epoch[keep:]
        self.doc_ppos = self.doc_ppos[keep:]
        self.pos -= start

    def _render(self, docs: np.ndarray, ppos: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Documents -> pieces ``BOS, body, EOS`` each (body FIM-permuted for the chosen ones), and lengths.

        One slice per document out of the memory-mapped shard (no copy yet; the caller concatenates
        once): per document Python work only (about a microsecond), nothing per token.
        """
        sh = self.shards
        views, shard_of, starts, lens = sh.views, sh.shard_of[docs].tolist(), sh.starts[docs].tolist(), sh.lengths[
            docs]
        bodies = [views[k][s:s + n] for k, s, n in zip(shard_of, starts, lens.tolist(), strict=True)]
        lengths = lens + 2
        if self._fim_ids is not None:
            chosen = np.nonzero(hash_uniform(ppos, self.seed, self.key, self.epoch, 0) < self.fim_rate)[0]
            if len(chosen):
                cuts = [hash_uniform(ppos[chosen], self.seed, self.key, self.epoch, s) for s in (1, 2, 3)]
                for j, i in enumerate(chosen.tolist()):
                    bodies[i] = fim_permute(bodies[i], cuts[0][j], cuts[1][j], bool(cuts[2][j] < self.spm_rate),
                                            self._fim_ids)
                lengths[chosen] += 3
        bos, eos = self._bos, self._eos
        return [x for body in bodies for x in (bos, body, eos)], lengths

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


class PackedLoader:
    """Batches of packed (or padded) rows from per-domain shards, mixed by a (scheduled) mixture.

    ``special``: a :class:`SpecialIds`, or a tokenizer (its ``bos_id``, ``eos_id``... are used).
    Call :meth:`set_progress` with the training fraction before each batch when the mixture has a
    schedule. ``state_dict()`` holds only plain ints/floats/strings (safe for ``torch.load(weights_only=True)``).
    """

    def __init__(self, shards: dict[str, ShardSet], seq_len: int, micro_batch: int, mixture: Mixture,
                 cfg: LoaderConfig | None = None, special=None, seed: int = 0, rank: int = 0, world_size: int = 1):
        cfg = cfg or LoaderConfig()
        if seq_len < 1 or micro_batch < 1:
            raise ValueError(f"seq_len and micro_batch must be >= 1 (got {seq_len}, {micro_batch})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        if special is None:
            raise ValueError("PackedLoader needs the tokenizer's special ids (special=tokenizer or SpecialIds)")
        self.special = special if isinstance(special, SpecialIds) else SpecialIds.of(special)
        missing = sorted(set(mixture.domains) - set(shards))
        if missing:
            raise ValueError(f"mixture domain '{missing[0]}' has no token shards (have: {', '.join(sorted(shards))})")
        fim = cfg.fim
        if fim.rate > 0 and None in (self.special.fim_prefix, self.special.fim_middle, self.special.fim_suffix):
            raise ValueError("data.loader.fim.rate > 0 but the tokenizer has no FIM special tokens")
        self.cfg = cfg
        self.seq_len = seq_len
        self.micro_batch = micro_batch
        self.mixture = mixture
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.domains = list(mixture.domains)
        self.streams = {
            d: _DomainStream(shards[d], d, seed, rank, world_size, self.special,
                             fim.rate if d in fim.domains else 0.0, fim.spm_rate, cfg.chunk_tokens)
            for d in self.domains
        }
        self.batch_index = 0
        self.progress = 0.0
        self._weights = mixture.weight_vector(0.0)
        self._positions = 0
        self._nonpad = 0

    # -- mixture --------------------------------------------------------------------------------------
    def set_progress(self, fraction: float) -> None:
        """Training progress in [0, 1]; the mixture weights of the next batches follow it."""
        self.progress = float(fraction)
        self._weights = self.mixture.weight_vector(self.progress)

    @property
    def weights(self) -> dict[str, float]:
        return dict(zip(self.domains, map(float, self._weights), strict=True))

    @property
    def packing_efficiency(self) -> float:
        """Fraction of input positions holding real tokens (not PAD) so far; 1.0 when packing."""
        return self._nonpad / self._positions if self._positions else 1.0

    def epochs(self) -> dict[str, float]:
        """Epochs of each domain consumed by this rank so far."""
        return {d: s.tokens_served / s.stream_tokens for d, s in self.streams.items()}

    # -- batches --------------------------------------------------------------------------------------
    def _draw_domains(self) -> np.ndarray:
        """The domain of each row: counter-based draws from (seed, rank, batch index), so resumable."""
        u = hash_uniform(np.arange(self.micro_batch), self.seed, self.rank, self.batch_index, 0x6D6978)
        cdf = np.cumsum(self._weights)
        return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(self.domains) - 1)

    def next_batch(self) -> Batch:
        B, T = self.micro_batch, self.seq_len
        # Rows are grouped by domain (a batch is a set of rows, so order carries no meaning): each
        # domain then fills one contiguous block and every write below goes straight into place.
        choice = np.sort(self._draw_domains())
        inputs = np.empty((B, T), dtype=np.int64)
        targets = np.empty((B, T), dtype=np.int64)
        doc_ids = np.zeros((B, T), dtype=np.int64)
        lineage: list[list[tuple[str, int]]] = [[] for _ in range(B)]
        if self.cfg.pack:
            bounds = np.searchsorted(choice, np.arange(len(self.domains) + 1)).tolist()
            for di in range(len(self.domains)):
                a, b = bounds[di], bounds[di + 1]
                if a == b:
                    continue
                stream = self.streams[self.domains[di]]
                win, starts, first, last = stream.take_packed(b - a, T, self.cfg.doc_mask)
                inputs[a:b] = win[:, :-1]
                targets[a:b] = win[:, 1:]
                if starts is not None:
                    # A document starting at (row, col) ends the previous one: the target that would
                    # predict its BOS from the previous EOS is ignored, and ids count up from there.
                    # Python over the few starts is cheaper than any per-token numpy pass.
                    prev, k = -1, 0
                    for c in starts:
                        r, col = divmod(c, T)
                        if col == 0:  # starts exactly at a row start: only the previous row's last target
                            targets[a + r - 1, T - 1] = IGNORE
                            continue
                        targets[a + r, col - 1] = IGNORE
                        k = k + 1 if r == prev else 1
                        prev = r
                        doc_ids[a + r, col:] = k
                if self.cfg.lineage:  # one lookup for the block, then per-row slices of it
                    lo = int(first[0])
                    entries = stream.lineage(lo, int(last[-1]))
                    for r, k0, k1 in zip(range(a, b), first.tolist(), last.tolist(), strict=True):
                        lineage[r] = entries[k0 - lo:k1 - lo + 1]
            self._nonpad += B * T
        else:
            pad = self.special.pad
            inputs.fill(pad)
            targets.fill(IGNORE)
            for r, di in enumerate(choice.tolist()):
                stream = self.streams[self.domains[di]]
                toks, k = stream.take_padded(T)
                n = len(toks) - 1
                inputs[r, :n] = toks[:-1]
                targets[r, :n] = toks[1:]
                doc_ids[r, n:] = 1  # padding is its own "document": real tokens never attend to it
                self._nonpad += n
                if self.cfg.lineage:
                    lineage[r] = stream.lineage(k, k)
        self._positions += B * T
        self.batch_index += 1
        return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(doc_ids),
                     [self.domains[i] for i in choice.tolist()], lineage)

    def __iter__(self):
        while True:
            yield self.next_batch()

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "seq_len": self.seq_len, "micro_batch": self.micro_batch, "pack": self.cfg.pack,
                "batch_index": self.batch_index, "progress": self.progress, "positions": self._positions,
                "nonpad": self._nonpad, "streams": {d: s.state() for d, s in self.streams.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')} != {STATE_VERSION}")
        for key in ("seed", "rank", "world_size"):
            if state[key] != getattr(self, key):
                raise ValueError(f"loader state was saved with {key}={state[key]}, this loader has "
                                 f"{key}={getattr(self, key)}; resumption would not be exact")
        unknown = sorted(set(self.streams) - set(state["streams"]))
        if unknown:
            raise ValueError(f"loader state has no position for domain '{unknown[0]}'")
        self.batch_index = int(state["batch_index"])
        self.set_progress(float(state["progress"]))
        self._positions, self._nonpad = int(state["positions"]), int(state["nonpad"])
        for d, s in self.streams.items():
            st = state["streams"][d]
            s.reset(int(st["epoch"]), int(st["ppos"]), int(st["offset"]))
            s.tokens_served = int(st["tokens_served"])
