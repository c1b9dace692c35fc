"""Token shards: flat memory-mapped token files plus a per-document index with lineage.

Layout, per split and domain (``tokens/<split>/<domain>/``)::

    shard_00000.bin       256-byte header, then the documents' token ids back to back (uint16 or uint32)
    shard_00000.idx.npy   one row per document: start, length (tokens), nbytes (UTF-8 bytes of its text),
                          id (the record id), src_off/src_len (its source string inside .src)
    shard_00000.src       the documents' ``source`` strings, UTF-8, back to back
    meta.json             summary: tokenizer hash, dtype, documents, tokens, bytes, shard names

Documents are stored as raw ids without BOS/EOS (the loader adds them). The header holds a magic, the
format version, the token width, the counts and the SHA-256 of the tokenizer.json that produced the
tokens, so reading shards with another tokenizer is a one-line error instead of silent garbage. Every
token can be traced back to its record (``doc_source``), and ``nbytes`` lets evaluation compute bits per
byte from the shards alone.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"PRTKSHRD"
VERSION = 1
HEADER_SIZE = 256
_HEADER = struct.Struct("<8sIIQQQ64s")  # magic, version, itemsize, num_tokens, num_docs, vocab_size, hash
INDEX_DTYPE = np.dtype([("start", "<i8"), ("length", "<i8"), ("nbytes", "<i8"), ("id", "S16"),
                        ("src_off", "<i8"), ("src_len", "<i8")])


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab <= 65536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


@dataclass(frozen=True)
class DocSource:
    """Where a document came from: its record id and source, and where its tokens live."""

    id: str
    source: str
    shard: str
    index: int


@dataclass(frozen=True)
class ShardHeader:
    version: int
    itemsize: int
    num_tokens: int
    num_docs: int
    vocab_size: int
    tokenizer_hash: str


def read_header(path: str | Path) -> ShardHeader:
    """Read and check a shard header; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token shard not found: {path}")
    with open(path, "rb") as f:
        raw = f.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or raw[:8] != MAGIC:
        raise ValueError(f"{path}: not a token shard (bad magic)")
    _, version, itemsize, num_tokens, num_docs, vocab, digest = _HEADER.unpack_from(raw)
    if version != VERSION:
        raise ValueError(f"{path}: shard format version {version}, this code reads version {VERSION}")
    if itemsize not in (2, 4):
        raise ValueError(f"{path}: bad token width {itemsize}")
    expected = HEADER_SIZE + num_tokens * itemsize
    if path.stat().st_size != expected:
        raise ValueError(f"{path}: truncated or corrupt shard ({path.stat().st_size} bytes, header says {expected})")
    return ShardHeader(version, itemsize, num_tokens, num_docs, vocab, digest.decode("ascii"))


class ShardWriter:
    """Append documents to the shards of one split/domain directory (a new shard every ``shard_tokens``)."""

    def __init__(self, out_dir: str | Path, tokenizer_hash: str, vocab_size: int, shard_tokens: int = 1 << 30):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hash = tokenizer_hash
        self.vocab_size = vocab_size
        self.dtype = token_dtype(vocab_size)
        self.shard_tokens = shard_tokens
        self.shards: list[str] = []
        self.num_docs = self.num_tokens = self.num_bytes = 0
        self._file = None

    def _open(self) -> None:
        name = f"shard_{len(self.shards):05d}"
        self.shards.append(name)
        self._file = open(self.dir / f"{name}.bin", "wb")
        self._file.write(b"\0" * HEADER_SIZE)
        self._src = open(self.dir / f"{name}.src", "wb")
        self._index: list[np.ndarray] = []
        self._tok = self._docs = self._src_len = 0

    def add(self, tokens: np.ndarray, lengths: np.ndarray, nbytes: Sequence[int], ids: Sequence[str],
            sources: Sequence[str]) -> None:
        """Append a batch of documents: ``tokens`` is their ids concatenated, ``lengths`` per document."""
        if self._file is None or self._tok >= self.shard_tokens:
            self._close_shard()
            self._open()
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(tokens) and int(tokens.max()) >= self.vocab_size:
            raise ValueError(f"{self.dir}: token id {int(tokens.max())} >= vocab size {self.vocab_size}")
        self._file.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        src = [s.encode("utf-8", "surrogatepass") for s in sources]
        src_len = np.fromiter((len(s) for s in src), dtype=np.int64, count=len(src))
        self._src.write(b"".join(src))
        rows = np.zeros(len(lengths), dtype=INDEX_DTYPE)
        rows["length"] = lengths
        rows["start"] = self._tok + np.cumsum(lengths) - lengths
        rows["nbytes"] = np.asarray(nbytes, dtype=np.int64)
        rows["id"] = np.asarray([i.encode("ascii", "replace")[:16] for i in ids], dtype="S16")
        rows["src_len"] = src_len
        rows["src_off"] = self._src_len + np.cumsum(src_len) - src_len
        self._index.append(rows)
        self._tok += int(lengths.sum())
        self._docs += len(lengths)
        self._src_len += int(src_len.sum())
        self.num_tokens += int(lengths.sum())
        self.num_docs += len(lengths)
        self.num_bytes += int(rows["nbytes"].sum())

    def _close_shard(self) -> None:
        if self._file is None:
            return
        header = _HEADER.pack(MAGIC, VERSION, self.dtype.itemsize, self._tok, self._docs, self.vocab_size,
                              self.hash.encode("ascii"))
        self._file.seek(0)
        self._file.write(header)
        self._file.close()
        self._src.close()
        index = np.concatenate(self._index) if self._index else np.zeros(0, dtype=INDEX_DTYPE)
        np.save(self.dir / f"{self.shards[-1]}.idx.npy", index)
        self._file = None

    def close(self) -> dict:
        """Finish the last shard, write meta.json and return the summary."""
        self._close_shard()
        meta = {"tokenizer_hash": self.hash, "vocab_size": self.vocab_size, "dtype": self.dtype.name,
                "documents": self.num_docs, "tokens": self.num_tokens, "bytes": self.num_bytes,
                "shards": self.shards, "version": VERSION}
        (self.dir / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return meta


class _Shard:
    """One memory-mapped shard and its index."""

    def __init__(self, bin_path: Path, tokenizer_hash: str | None):
        self.path = bin_path
        self.header = read_header(bin_path)
        if tokenizer_hash is not None and self.header.tokenizer_hash != tokenizer_hash:
            raise ValueError(
                f"{bin_path}: shard was written by tokenizer {self.header.tokenizer_hash[:12]}, "
                f"not by the current tokenizer {tokenizer_hash[:12]} (re-run `pretrain tokenize`)")
        dtype = np.uint16 if self.header.itemsize == 2 else np.uint32
        n = self.header.num_tokens
        self.tokens = (np.memmap(bin_path, dtype=dtype, mode="r", offset=HEADER_SIZE, shape=(n,)) if n
                       else np.zeros(0, dtype=dtype))
        idx_path = bin_path.with_suffix(".idx.npy")
        if not idx_path.is_file():
            raise FileNotFoundError(f"document index missing for {bin_path}: {idx_path}")
        self.index = np.load(idx_path, mmap_mode="r")
        if self.index.dtype != INDEX_DTYPE or len(self.index) != self.header.num_docs:
            raise ValueError(f"{idx_path}: index does not match its shard ({len(self.index)} documents, "
                             f"header says {self.header.num_docs})")
        self.starts = np.asarray(self.index["start"])
        self.lengths = np.asarray(self.index["length"])
        if len(self.starts) and int(self.starts[-1] + self.lengths[-1]) != n:
            raise ValueError(f"{idx_path}: document index does not cover the {n} tokens of its shard")
        self.src_path = bin_path.with_suffix(".src")
        self._src: bytes | None = None

    def source(self, i: int) -> DocSource:
        if self._src is None:
            self._src = self.src_path.read_bytes()
        row = self.index[i]
        off, ln = int(row["src_off"]), int(row["src_len"])
        return DocSource(id=row["id"].decode("ascii"), source=self._src[off:off + ln].decode("utf-8", "surrogatepass"),
                         shard=str(self.path), index=int(i))


class ShardSet:
    """All shards of one split/domain directory, as one sequence of documents (global index 0..num_docs-1)."""

    def __init__(self, directory: str | Path, tokenizer_hash: str | None = None):
        self.dir = Path(directory)
        if not self.dir.is_dir():
            raise FileNotFoundError(f"token shard directory not found: {self.dir}")
        bins = sorted(self.dir.glob("shard_*.bin"))
        if not bins:
            raise FileNotFoundError(f"no token shards (shard_*.bin) in {self.dir}")
        self.domain = self.dir.name
        self.shards = [_Shard(p, tokenizer_hash) for p in bins]
        vocab = {s.header.vocab_size for s in self.shards}
        hashes = {s.header.tokenizer_hash for s in self.shards}
        if len(vocab) > 1 or len(hashes) > 1:
            raise ValueError(f"{self.dir}: shards were written by different tokenizers")
        self.tokenizer_hash = hashes.pop()
        self.vocab_size = vocab.pop()
        counts = np.array([s.header.num_docs for s in self.shards], dtype=np.int64)
        self._doc_offsets = np.concatenate([[0], np.cumsum(counts)])
        self.num_docs = int(self._doc_offsets[-1])
        self.num_tokens = int(sum(s.header.num_tokens for s in self.shards))
        # Flat per-document arrays over all shards: the loader works on these (vectorized gathers).
        self.lengths = np.concatenate([s.lengths for s in self.shards]).astype(np.int64)
        self.starts = np.concatenate([s.starts for s in self.shards]).astype(np.int64)
        self.shard_of = np.repeat(np.arange(len(self.shards)), counts)
        self.local_index = np.arange(self.num_docs, dtype=np.int64) - self._doc_offsets[self.shard_of]
        self.shard_paths = [str(s.path) for s in self.shards]
        # plain ndarray views of the memmaps: slicing them is ~10x cheaper than slicing np.memmap objects
        self.views = [np.asarray(s.tokens) for s in self.shards]

    def __len__(self) -> int:
        return self.num_docs

    def _locate(self, i: int) -> tuple[_Shard, int]:
        if not 0 <= i < self.num_docs:
            raise IndexError(f"{self.dir}: document {i} out of range (0..{self.num_docs - 1})")
        k = int(self.shard_of[i])
        return self.shards[k], i - int(self._doc_offsets[k])

    def doc_tokens(self, i: int) -> np.ndarray:
        shard, j = self._locate(i)
        s, n = int(shard.starts[j]), int(shard.lengths[j])
        return np.asarray(shard.tokens[s:s + n])

    def doc_bytes(self, i: int) -> int:
        shard, j = self._locate(i)
        return int(shard.index[j]["nbytes"])

    def doc_source(self, i: int) -> DocSource:
        shard, j = self._locate(i)
        return shard.source(j)

    def lineage(self, i: int) -> tuple[str, int]:
        """(shard path, document index within that shard): the form used in ``Batch.lineage``."""
        shard, j = self._locate(i)
        return str(shard.path), j

    @property
    def num_bytes(self) -> int:
        return int(sum(int(np.asarray(s.index["nbytes"]).sum()) for s in self.shards))

    def gather(self, docs: np.ndarray) -> np.ndarray:
        """The tokens of documents ``docs`` (global indices), concatenated in that order, as int64."""
        docs = np.asarray(docs, dtype=np.int64)
        lengths = self.lengths[docs]
        total = int(lengths.sum())
        out = np.empty(total, dtype=np.int64)
        if total == 0:
            return out
        out_starts = np.cumsum(lengths) - lengths
        shard_ids = self.shard_of[docs]
        for k in np.unique(shard_ids):
            sel = shard_ids == k if len(self.shards) > 1 else slice(None)
            ln, o, st = lengths[sel], out_starts[sel], self.starts[docs[sel]]
            n = int(ln.sum())
            # out position p of document d reads token st_d + (p - o_d): one vectorized gather per shard.
            rel = np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
            out[np.repeat(o, ln) + rel] = self.shards[int(k)].tokens[np.repeat(st, ln) + rel]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.num_docs):
            yield self.doc_tokens(i)

    def __repr__(self) -> str:
        return f"ShardSet({str(self.dir)!r}, docs={self.num_docs}, tokens={self.num_tokens})"


def lookup(shard_path: str | Path, index: int) -> DocSource:
    """Trace a ``Batch.lineage`` entry (shard path, document index) back to its record id and source."""
    return _Shard(Path(shard_path), None).source(int(index))


def load_split(tokens_dir: str | Path, split: str, tokenizer_hash: str | None = None) -> dict[str, ShardSet]:
    """{domain: ShardSet} for every domain directory under ``tokens_dir/split``."""
    root = Path(tokens_dir) / split
    if not root.is_dir():
        raise FileNotFoundError(f"token split directory not found: {root} (run `pretrain tokenize` first)")
    out = {d.name: ShardSet(d, tokenizer_hash) for d in sorted(root.iterdir())
           if d.is_dir() and any(d.glob("shard_*.bin"))}
    if not out:
        raise FileNotFoundError(f"no domain shard directories under {root}")
    return out
