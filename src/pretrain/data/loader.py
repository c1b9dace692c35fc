"""The packing loader: domain mixture -> fixed-length rows with document ids, FIM, exact resume.

Each domain is an endless *stream* (``pretrain.data.stream``): its documents in a seeded random order per
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
generator seeded by (seed, global batch index), so a restored loader produces exactly the batches the
uninterrupted one would have.

Ranks: there is one global stream of micro-batches (the one a single process reads). Rank r of N
builds global micro-batches r, r + N, ... and moves past the others' rows from the documents' lengths
(no token of theirs is read), so data work per rank falls as 1/N while the union of the ranks' rows is
exactly the single-process stream, and the saved state (a global position) resumes under any N.

Everything per token is vectorized numpy (gathers from the memory-mapped shards); Python runs per
chunk of documents and per row only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pretrain.data.fim import hash_uniform
from pretrain.data.loader_config import LoaderConfig
from pretrain.data.mixture import Mixture
from pretrain.data.shards import ShardSet
from pretrain.data.stream import DomainStream, SpecialIds

IGNORE = -100
STATE_VERSION = 2


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

    def crosses_documents(self) -> bool:
        """True when some row holds more than one document. When none does, document masking equals the
        plain causal mask, so the trainer passes no ``doc_ids`` and attention takes the causal kernel
        (SDPA's ``is_causal`` path; on CUDA the flash kernels, which a mask rules out). Call it on the
        host batch, before it moves to the device: it reads a value back."""
        d = self.doc_ids
        return bool((d[:, 1:] != d[:, :-1]).any())

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


class PackedLoader:
    """Batches of packed (or padded) rows from per-domain shards, mixed by a (scheduled) mixture.

    ``special``: a :class:`SpecialIds`, or a tokenizer (its ``bos_id``, ``eos_id``... are used).
    Call :meth:`set_progress` with the training fraction before each batch when the mixture has a
    schedule. ``state_dict()`` holds only plain ints/floats/strings (safe for ``torch.load(weights_only=True)``).

    ``rank`` / ``world_size`` (or :meth:`shard`): this process's share of one global stream of
    micro-batches. The global stream is the one a single process reads; rank r of N returns global
    micro-batches r, r + N, r + 2N, ... and moves past the others from document lengths alone (no token
    of theirs is read). Between calls every rank stands at the same global position, so the state is
    the same on every rank and a run resumes under another world size by re-splitting the same stream.
    """

    def __init__(self, shards: dict[str, ShardSet], seq_len: int, micro_batch: int, mixture: Mixture,
                 cfg: LoaderConfig | None = None, special=None, seed: int = 0, rank: int = 0, world_size: int = 1):
        cfg = cfg or LoaderConfig()
        if seq_len < 1 or micro_batch < 1:
            raise ValueError(f"seq_len and micro_batch must be >= 1 (got {seq_len}, {micro_batch})")
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
        self.domains = list(mixture.domains)
        self.streams = {
            d: DomainStream(shards[d], d, seed, self.special, fim.rate if d in fim.domains else 0.0,
                            fim.spm_rate, cfg.chunk_tokens)
            for d in self.domains
        }
        self.batch_index = 0
        """Global micro-batches consumed (this rank's and the others')."""
        self.progress = 0.0
        self._weights = mixture.weight_vector(0.0)
        self._positions = 0
        self._nonpad = 0
        self._pending = np.zeros(len(self.domains), dtype=np.int64)  # rows of other ranks not yet skipped
        self.round_targets = 0
        """Valid targets of the last round of ``world_size`` global micro-batches (see next_batch)."""
        self.shard(rank, world_size)

    def shard(self, rank: int, world_size: int) -> None:
        """Serve rank ``rank`` of ``world_size`` from the next batch on (the state is world-independent, so
        this may follow a ``load_state_dict`` saved under another world size, or come between batches)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self._flush()  # the global position so far stays; only who reads what from here on changes
        self.rank, self.world_size = rank, world_size
        # One process renders big chunks (fewest copies); a rank renders only its own rows' documents,
        # since most of what a chunk would hold belongs to the other ranks.
        for s in self.streams.values():
            s.chunk_tokens = self.cfg.chunk_tokens if world_size == 1 else 1

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
        """Epochs of each domain consumed by the run so far (all ranks)."""
        self._flush()
        return {d: s.tokens_served / s.stream_tokens for d, s in self.streams.items()}

    @property
    def tokens_read(self) -> int:
        """Tokens this process rendered from the shards (about 1 / world_size of the stream)."""
        return sum(s.tokens_read for s in self.streams.values())

    # -- batches --------------------------------------------------------------------------------------
    def _draw_domains(self) -> np.ndarray:
        """The domain of each row: counter-based draws from (seed, global batch index), so resumable.
        (The 0 is the slot a per-rank key once held: one global stream keeps it at 0.)"""
        u = hash_uniform(np.arange(self.micro_batch), self.seed, 0, self.batch_index, 0x6D6978)
        cdf = np.cumsum(self._weights)
        return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(self.domains) - 1)

    def next_batch(self) -> Batch:
        """This rank's next micro-batch: global micro-batch ``rank`` of the next ``world_size``.

        Afterwards ``round_targets`` holds the valid targets of all ``world_size`` micro-batches of the
        round (this rank's and, counted from document lengths, the others'): what a step's loss is
        normalised by, known on every rank without any communication.
        """
        if self.world_size == 1:
            batch, self.round_targets = self._make_batch()
            return batch
        for _ in range(self.rank):
            self._skip_batch()
        others = self._flush()
        batch, targets = self._make_batch()
        for _ in range(self.world_size - 1 - self.rank):
            self._skip_batch()
        others += self._flush()
        self.round_targets = others + targets
        return batch

    def skip_batches(self, n: int) -> None:
        """Move past ``n`` global micro-batches without building them (document lengths only): a fast
        forward to a known step, as lineage tracing does (pretrain.lineage.replay)."""
        for _ in range(n):
            self._skip_batch()
        self._flush()

    def _skip_batch(self) -> None:
        """Another rank's micro-batch: draw its domains (the mixture weights of now), defer the reading."""
        self._pending += np.bincount(self._draw_domains(), minlength=len(self.domains))
        self._positions += self.micro_batch * self.seq_len
        if self.cfg.pack:
            self._nonpad += self.micro_batch * self.seq_len
        self.batch_index += 1

    def _flush(self) -> int:
        """Move every stream past the rows of skipped micro-batches (lengths only; one move per domain);
        returns the valid targets those rows hold."""
        targets = 0
        for di in np.nonzero(self._pending)[0].tolist():
            stream, rows = self.streams[self.domains[di]], int(self._pending[di])
            if self.cfg.pack:  # every target counts but the one before each document start (doc_mask)
                crossed = stream.skip(rows * self.seq_len)
                targets += rows * self.seq_len - (crossed if self.cfg.doc_mask else 0)
            else:  # one document (piece) per row: its real tokens are its targets
                real = stream.skip_padded(rows, self.seq_len)
                self._nonpad += real
                targets += real
        self._pending[:] = 0
        return targets

    def _make_batch(self) -> tuple[Batch, int]:
        """The batch and its number of valid targets (counted while building it, not by a scan)."""
        B, T = self.micro_batch, self.seq_len
        n_targets = 0
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
                n_targets += (b - a) * T - (len(starts) if starts is not None else 0)
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
                n_targets += n
                if self.cfg.lineage:
                    lineage[r] = stream.lineage(k, k)
        self._positions += B * T
        self.batch_index += 1
        return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(doc_ids),
                     [self.domains[i] for i in choice.tolist()], lineage), n_targets

    def __iter__(self):
        while True:
            yield self.next_batch()

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The global stream position: the same on every rank (``rank`` / ``world_size`` are informative)."""
        self._flush()
        return {"version": STATE_VERSION, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "seq_len": self.seq_len, "micro_batch": self.micro_batch, "pack": self.cfg.pack,
                "batch_index": self.batch_index, "progress": self.progress, "positions": self._positions,
                "nonpad": self._nonpad, "streams": {d: s.state() for d, s in self.streams.items()}}

    def load_state_dict(self, state: dict) -> None:
        version = state.get("version")
        # Version 1 split documents between ranks; its single-process states mean what version 2 does.
        if version != STATE_VERSION and not (version == 1 and state.get("world_size") == 1):
            raise ValueError(f"loader state version {version} (world_size={state.get('world_size')}) cannot be "
                             f"read by this loader (version {STATE_VERSION})")
        if state["seed"] != self.seed:
            raise ValueError(f"loader state was saved with seed={state['seed']}, this loader has "
                             f"seed={self.seed}; resumption would not be exact")
        # A different world_size (or micro_batch, seq_len) is fine: the state is the global position, and this loader's rank
        # takes its share of the same stream from there (rank r of N: the r-th of every N micro-batches).
        unknown = sorted(set(self.streams) - set(state["streams"]))
        if unknown:
            raise ValueError(f"loader state has no position for domain '{unknown[0]}'")
        self.batch_index = int(state["batch_index"])
        self.set_progress(float(state["progress"]))
        self._positions, self._nonpad = int(state["positions"]), int(state["nonpad"])
        self._pending[:] = 0
        for d, s in self.streams.items():
            st = state["streams"][d]
            s.reset(int(st["epoch"]), int(st["ppos"]), int(st["offset"]))
            s.tokens_served = int(st["tokens_served"])
