"""Recompute a step's batches from the step log: which documents, which of their tokens, which row.

The loader is deterministic: its batches are a function of its construction (shards, context,
micro-batch, mixture, options, seed) and its global position (pretrain.data.loader). The step log keeps
both (pretrain.lineage.steplog), so a step is rebuilt by loading the position it started from into a
loader built the same way and drawing the step's global micro-batches in one process. Global
micro-batch i of a step ran on rank ``i % world`` as that rank's micro-batch ``i // world`` (the
loader's rank split, pretrain.train.step), so rows and ranks come out as they were trained, under any
world size. Each row's documents are also walked from the stream position and document lengths, and the
two must agree (a mismatch means the shards changed under the run, and is an error, not a guess).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrain.configlib import from_dict, to_dict
from pretrain.data.loader import IGNORE, STATE_VERSION, PackedLoader
from pretrain.data.loader_config import LoaderConfig, MixtureConfig
from pretrain.data.mixture import Mixture
from pretrain.data.shards import ShardSet
from pretrain.data.stream import DomainStream, SpecialIds
from pretrain.hashing import sha256_file
from pretrain.lineage.steplog import LineageError, StepLog, read_log


def describe(loader) -> dict | None:
    """What builds ``loader`` again (None for loaders that are not a PackedLoader)."""
    if not isinstance(loader, PackedLoader):
        return None
    sp = loader.special
    tokens = Path(next(iter(loader.streams.values())).shards.dir).resolve().parent.parent
    manifest = tokens / "manifest.json"
    return {"tokens_manifest": sha256_file(manifest) if manifest.is_file() else None, "seed": loader.seed, "seq_len": loader.seq_len, "micro_batch": loader.micro_batch,
            "loader": to_dict(loader.cfg), "mixture": to_dict(loader.mixture.cfg),
            "domain_tokens": dict(loader.mixture.domain_tokens),
            "special": {k: getattr(sp, k) for k in ("bos", "eos", "pad", "fim_prefix", "fim_middle", "fim_suffix")},
            "shards": {d: str(Path(s.shards.dir).resolve()) for d, s in loader.streams.items()},
            "tokenizer_hash": next(iter(loader.streams.values())).shards.tokenizer_hash}


def position(loader: PackedLoader) -> dict:
    """The loader's global position, compactly: batch counter, progress, per domain [epoch, ppos, offset, served]."""
    st = loader.state_dict()
    return {"batch_index": st["batch_index"], "progress": st["progress"],
            "streams": {d: [s["epoch"], s["ppos"], s["offset"], s["tokens_served"]] for d, s in st["streams"].items()}}


def build(header: dict, cache: dict | None = None) -> PackedLoader:
    """A loader built as the header describes (shard sets are shared through ``cache``)."""
    cache = {} if cache is None else cache
    want = header.get("tokens_manifest")
    if want:
        manifest = Path(next(iter(header["shards"].values()))).parent.parent / "manifest.json"
        if not manifest.is_file() or sha256_file(manifest) != want:
            raise LineageError(f"{manifest}: the token shards are not the ones this run trained on (their manifest "
                               "changed or is missing; `pretrain verify` names the files)")
    shards = {}
    for d, path in header["shards"].items():
        if path not in cache:
            if not Path(path).is_dir():
                raise LineageError(f"token shards of domain '{d}' are missing: {path} (moved or deleted after training)")
            cache[path] = ShardSet(path, header.get("tokenizer_hash"))
        shards[d] = cache[path]
    mixture = Mixture(from_dict(MixtureConfig, header["mixture"]), header["domain_tokens"])
    return PackedLoader(shards, header["seq_len"], header["micro_batch"], mixture,
                        from_dict(LoaderConfig, header["loader"]), special=SpecialIds(**header["special"]),
                        seed=header["seed"])


def seek(loader: PackedLoader, start: dict) -> None:
    """Put ``loader`` at a logged position."""
    loader.load_state_dict({
        "version": STATE_VERSION, "seed": loader.seed, "rank": 0, "world_size": 1, "seq_len": loader.seq_len,
        "micro_batch": loader.micro_batch, "pack": loader.cfg.pack, "batch_index": start["batch_index"],
        "progress": start["progress"], "positions": 0, "nonpad": 0,
        "streams": {d: {"epoch": v[0], "ppos": v[1], "offset": v[2], "tokens_served": v[3]}
                    for d, v in start["streams"].items()}})


@dataclass(frozen=True)
class Occurrence:
    """Tokens of one document in one row of one step."""

    domain: str
    doc: int
    """Index in the domain's ShardSet."""
    shard: str
    index: int
    """(shard file, index in it): the pair Batch.lineage holds."""
    epoch: int
    first: int
    last: int
    """Stream tokens first..last (inclusive) of the document: 0 is its BOS; FIM documents count in their
    permuted order. -1, -1 for padded rows (pack = false), where only the count is known."""
    tokens: int
    """Input positions of the row that hold the document."""
    micro: int
    """Global micro-batch of the step."""
    row: int


def _walk(stream: DomainStream, pos: tuple[int, int, int], n: int) -> list[tuple[int, int, int, int]]:
    """(epoch, global doc, first, last) of the documents covering ``n`` stream tokens from ``pos``."""
    epoch, ppos, offset = pos
    out = []
    while n > 0:
        length = int(stream.doc_lengths(epoch, ppos, 1)[0])
        take = min(n, length - offset)
        out.append((epoch, int(stream.order(epoch)[ppos]), offset, offset + take - 1))
        n -= take
        offset += take
        if offset >= length:
            offset = 0
            ppos += 1
            if ppos >= len(stream.docs):
                epoch, ppos = epoch + 1, 0
    return out


def _rows(stream: DomainStream, pos: tuple[int, int, int], rows: int, T: int) -> list[list[tuple[int, int, int, int]]]:
    """Per row, the (epoch, doc, first, last) pieces of ``rows`` consecutive windows of T input tokens."""
    out: list[list[tuple[int, int, int, int]]] = [[] for _ in range(rows)]
    at = 0
    for e, g, a, b in _walk(stream, pos, rows * T):
        while a <= b:
            r = at // T
            take = min(b - a + 1, (r + 1) * T - at)
            out[r].append((e, g, a, a + take - 1))
            a, at = a + take, at + take
    return out


def batches(loader: PackedLoader, step: int, micro: int) -> list[Occurrence]:
    """Every (document, row) of the ``micro`` global micro-batches from the loader's position (one step);
    each row is checked against the batch's own lineage."""
    out: list[Occurrence] = []
    for i in range(micro):
        here = {d: s.position() for d, s in loader.streams.items()}
        batch = loader.next_batch()
        if loader.cfg.pack:
            out += _packed(loader, batch, here, step, i)
            continue
        for r, domain in enumerate(batch.domains):
            sh = loader.streams[domain].shards
            shard, idx = batch.lineage[r][0]
            g = int(np.nonzero((np.asarray(sh.shard_paths)[sh.shard_of] == shard) & (sh.local_index == idx))[0][0])
            n = int((batch.targets[r] != IGNORE).sum())
            out.append(Occurrence(domain, g, shard, int(idx), -1, -1, -1, n, i, r))
    return out


class Replay:
    """A run's loader, driven step by step from its step log (each segment's loader built once)."""

    def __init__(self, run: str | Path, log: StepLog | None = None):
        self.run = Path(run)
        self.log = log or read_log(run)
        self._shards: dict = {}
        self._loaders: dict[str, PackedLoader] = {}

    def loader(self, segment: str) -> PackedLoader:
        if segment not in self._loaders:
            loader = build(self.log.segments[segment], self._shards)
            for s in loader.streams.values():
                s.chunk_tokens = 1  # render only what is asked for: a replay reads one step at a time
            self._loaders[segment] = loader
        return self._loaders[segment]

    def shard_set(self, shard_file: str) -> ShardSet:
        """The ShardSet (of this replay's loaders) that holds ``shard_file``."""
        return next(s for s in self._shards.values() if shard_file in s.shard_paths)

    def segments(self) -> list[tuple[int, int, str, dict]]:
        """(first step, last step, segment, start position) of each loader the run used, in order."""
        starts, last = self.log.starts, self.log.last_step
        return [(s.step, (starts[i + 1].step - 1) if i + 1 < len(starts) else last, s.segment, s.position)
                for i, s in enumerate(starts) if s.step <= last]

    def advance(self, loader: PackedLoader, step: int) -> None:
        """Move past step ``step``'s batches (lengths only)."""
        loader.set_progress(self.log.progress_of(step))
        loader.skip_batches(self.log.plan_of(step)[0])

    def step(self, n: int) -> tuple[list[Occurrence], int]:
        """The occurrences of step ``n`` and the world size it ran under."""
        self.log.check_step(n)
        first, _, segment, start = next(s for s in self.segments() if s[0] <= n <= s[1])
        loader = self.loader(segment)
        seek(loader, start)
        for s in range(first, n):
            self.advance(loader, s)
            self.check(s, loader)
        micro, world, _ = self.log.plan_of(n)
        loader.set_progress(self.log.progress_of(n))
        return batches(loader, n, micro), world

    def check(self, step: int, loader: PackedLoader) -> None:
        """After ``step``: the recomputed position must be the one the trainer logged there."""
        want = self.log.reached.get(step)
        if not want:
            return
        got = position(loader)
        same = got["batch_index"] == want["batch_index"] and all(
            got["streams"][d][:3] == list(v[:3]) for d, v in want["streams"].items())
        if not same:
            raise LineageError(f"{self.log.path}: recomputed loader position after step {step} differs from the "
                               f"one logged in training (the shards or the loader changed since)")


def _packed(loader: PackedLoader, batch, here: dict, step: int, micro: int) -> list[Occurrence]:
    """A packed micro-batch: each domain's rows are consecutive windows of its stream from ``here``."""
    out = []
    domains = batch.domains
    for domain in dict.fromkeys(domains):
        rows = [r for r, d in enumerate(domains) if d == domain]
        stream = loader.streams[domain]
        sh = stream.shards
        for r, pieces in zip(rows, _rows(stream, here[domain], len(rows), loader.seq_len), strict=True):
            if batch.lineage[r] and [sh.lineage(g) for _, g, _, _ in pieces] != list(batch.lineage[r]):
                raise LineageError(f"step {step}: recomputed row {r} of micro-batch {micro} does not match the "
                                   f"loader (the shards under {Path(sh.dir).parent} changed after training)")
            out += [Occurrence(domain, g, *sh.lineage(g), e, a, b, b - a + 1, micro, r) for e, g, a, b in pieces]
    return out
