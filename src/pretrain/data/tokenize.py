"""`pretrain tokenize`: encode curated documents into per-domain token shards, in parallel.

Documents are read in order (curated ``data/*.jsonl.zst``, any JSONL(.gz/.zst) or Parquet file), sent in
batches to the encoder and appended to the shard writer of their split and domain. The split is decided
by the document's split key hash (:func:`pretrain.data.split.doc_is_heldout`), so a document always lands on the
same side whatever the worker count. Encoding runs either in-process with the tokenizer's own Rust
thread pool (``workers=1``: `encode_batch` parallelises over cores itself) or in ``workers`` processes
each encoding single-threaded, with results written back in input order. Records are never dropped:
an empty document is kept as a zero-length entry, and a bad record stops the job naming file and line.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pretrain.data.record import Document, is_document_file, read_columns, read_file
from pretrain.data.shards import ShardWriter
from pretrain.data.split import doc_is_heldout


def _file_docs(path: Path) -> Iterator[Document]:
    """The documents of one input file, read by pretrain.data.record (JSONL, Parquet; the reader of
    curated output), or of a `datasets` save_to_disk .arrow file through record's columnar reader."""
    if path.suffix != ".arrow":
        return read_file(path)
    from pretrain.data.curate.io.hfdatasets import ArrowFile

    return read_columns(ArrowFile(path), path, "Arrow")


def input_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand inputs: a curated directory means its ``data/``; a `datasets` folder (save_to_disk or the
    Hub's Parquet layout) its record files; other directories are searched for ``*.jsonl*`` and
    ``*.parquet`` files (sorted)."""
    from pretrain.data.curate.io.hfdatasets import dataset_files

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and dataset_files(p):
            files.extend(dataset_files(p) or [])
        elif p.is_dir():
            root = p / "data" if (p / "data").is_dir() and (p / "stats.json").is_file() else p
            found = sorted(x for x in root.rglob("*") if is_document_file(x))
            if not found:
                raise FileNotFoundError(f"no *.jsonl* or *.parquet files under {root}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


def read_documents(inputs: Iterable[str | Path]) -> Iterator[Document]:
    """Every document of the inputs, in order (see :func:`input_files`)."""
    for f in input_files(inputs):
        yield from _file_docs(f)


# -- encoding workers ---------------------------------------------------------------------------------
_WORKER_TOK = None


def _worker_init(path: str) -> None:
    global _WORKER_TOK
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per process; the pool gives the parallelism
    from pretrain.tokenizer import load_tokenizer

    _WORKER_TOK = load_tokenizer(path)


def _encode(texts: list[str], tok=None) -> tuple[np.ndarray, np.ndarray]:
    """Encode a batch -> (all ids concatenated, uint32; ids per text). Raises ValueError on a bad text."""
    tok = tok or _WORKER_TOK
    ids = [np.asarray(x, dtype=np.uint32) for x in tok.encode_batch(texts)]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint32)
    return flat, lengths


def encode_task(path: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A Ray task: encode one batch with the tokenizer at ``path`` (loaded once per worker process)."""
    global _WORKER_TOK
    if _WORKER_TOK is None or str(getattr(_WORKER_TOK, "path", "")) != path:
        _worker_init(path)
    return _encode(texts)


def _ray_encoded(batches: Iterator[list[Document]], tok_path: str, workers: int, address: str | None):
    """(batch, flat, lengths) in input order, encoded by Ray tasks with at most 2 x workers in flight."""
    from pretrain.data.curate.execution.executors import RayExecutor

    ex = RayExecutor(workers, address)
    ray = ex.ray
    remote = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(encode_task)
    window: list[tuple[list[Document], Any]] = []
    try:
        for batch in batches:
            window.append((batch, remote.remote(tok_path, [d.text for d in batch])))
            while len(window) > 2 * max(1, workers):
                yield _ray_get(ray, *window.pop(0))
        while window:
            yield _ray_get(ray, *window.pop(0))
    finally:
        ex.close()


def _ray_get(ray, batch: list[Document], ref) -> tuple[list[Document], np.ndarray, np.ndarray]:
    try:
        return (batch, *ray.get(ref))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        if isinstance(cause, ValueError):
            raise _named(cause, batch) from None
        raise cause from None


def _named(exc: ValueError, batch: list[Document]) -> ValueError:
    """Turn "text #i is not valid ..." into a message naming the record's source."""
    from pretrain.tokenizer.wrapper import bad_text_index

    i = bad_text_index([d.text for d in batch])
    where = f"{batch[i].source or batch[i].id}" if i is not None else "a batch"
    return ValueError(f"{where}: cannot tokenize record: {exc}")


def _batches(docs: Iterator[Document], batch_docs: int, batch_bytes: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    size = 0
    for d in docs:
        batch.append(d)
        size += len(d.text)
        if len(batch) >= batch_docs or size >= batch_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def tokenize_corpus(inputs: Iterable[str | Path] | str | Path, tokenizer, out_dir: str | Path,
                    val_fraction: float = 0.05, workers: int | None = None, batch_docs: int = 512,
                    batch_bytes: int = 4_000_000, shard_tokens: int = 1 << 30, executor: str = "local",
                    ray_address: str | None = None) -> dict:
    """Encode documents into ``out_dir/{train,val}/<domain>/`` shards; returns (and writes) stats.json.

    ``tokenizer``: a :class:`pretrain.tokenizer.Tokenizer` or a path to one. ``workers``: None = 1 if
    the machine has <= 2 cores (the in-process Rust pool is then fastest), else the core count.
    Previous shards in ``out_dir/train`` and ``out_dir/val`` are replaced once the new ones are complete.
    ``executor="ray"``: batches are encoded by Ray tasks (``ray_address`` joins a cluster; else a local
    Ray instance with ``workers`` CPUs); the shards are identical to the local executor's.
    """
    from pretrain.tokenizer import Tokenizer, load_tokenizer

    tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    workers = _check_options(tok, val_fraction, workers, executor, ray_address)
    out = Path(out_dir)
    tmp = out / f".tmp-tokenize-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    sink = _ShardSink(tmp, tok, val_fraction, shard_tokens)
    batches = _batches(read_documents(inputs), batch_docs, batch_bytes)
    try:
        # closing(): an error while writing stops the encoders now (the pool or Ray), not at garbage collection
        with contextlib.closing(_encoded(batches, tok, workers, executor, ray_address)) as encoded:
            for batch, flat, lengths in encoded:
                sink.write(batch, flat, lengths)
        metas = sink.close()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not metas:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"no documents found in {', '.join(map(str, inputs))}")
    _publish(tmp, out)
    seconds = time.perf_counter() - t0
    total_bytes = sum(m["bytes"] for m in metas.values())
    stats = {
        "tokenizer_hash": tok.hash, "vocab_size": tok.vocab_size, "val_fraction": val_fraction,
        "documents": sink.documents, "tokens": sum(m["tokens"] for m in metas.values()), "bytes": total_bytes,
        "seconds": seconds, "mb_per_s": total_bytes / 1e6 / max(seconds, 1e-9), "workers": workers,
        "executor": executor,
        "splits": {s: {d: {k: metas[(s2, d)][k] for k in ("documents", "tokens", "bytes", "dtype")}
                       for (s2, d) in sorted(metas) if s2 == s} for s in ("train", "val")},
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    _manifest(out, inputs, tok, val_fraction, shard_tokens)
    return stats


def _check_options(tok, val_fraction: float, workers: int | None, executor: str, ray_address: str | None) -> int:
    """Refuse bad options in one line; returns the worker count (None: 1 on <= 2 cores, else the cores)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1) (got {val_fraction})")
    cores = os.cpu_count() or 1
    workers = workers if workers is not None else (1 if cores <= 2 else cores)
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r} (choose from local, ray)")
    if ray_address and executor != "ray":
        raise ValueError("--ray-address needs --executor ray")
    if (workers > 1 or executor == "ray") and tok.path is None:
        raise ValueError("tokenize_corpus: a tokenizer loaded from a file is needed for worker processes")
    return workers


class _ShardSink:
    """The shard writers of one run, one per (split, domain), under a temporary directory; documents
    go to the split their key hashes to."""

    def __init__(self, tmp: Path, tok, val_fraction: float, shard_tokens: int):
        self.tmp, self.tok, self.val_fraction, self.shard_tokens = tmp, tok, val_fraction, shard_tokens
        self.writers: dict[tuple[str, str], ShardWriter] = {}
        self.documents = 0

    def write(self, batch: list[Document], flat: np.ndarray, lengths: np.ndarray) -> None:
        ends = np.cumsum(lengths)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, d in enumerate(batch):
            split = "val" if doc_is_heldout(d, self.val_fraction) else "train"
            groups.setdefault((split, d.domain), []).append(i)
        for key, rows in groups.items():
            if key not in self.writers:
                if not key[1] or "/" in key[1] or key[1].startswith("."):
                    raise ValueError(f"{batch[rows[0]].source}: bad domain name {key[1]!r}")
                self.writers[key] = ShardWriter(self.tmp / key[0] / key[1], self.tok.hash, self.tok.vocab_size,
                                                self.shard_tokens)
            sel = np.asarray(rows)
            parts = [flat[ends[i] - lengths[i]:ends[i]] for i in rows]
            self.writers[key].add(np.concatenate(parts) if parts else flat[:0], lengths[sel],
                                  [len(batch[i].text.encode("utf-8", "surrogatepass")) for i in rows],
                                  [batch[i].id for i in rows], [batch[i].source for i in rows])
        self.documents += len(batch)

    def close(self) -> dict[tuple[str, str], dict]:
        """Each writer's shard metadata, by (split, domain)."""
        return {key: w.close() for key, w in self.writers.items()}


def _encoded(batches: Iterator[list[Document]], tok, workers: int, executor: str,
             ray_address: str | None) -> Iterator[tuple[list[Document], np.ndarray, np.ndarray]]:
    """(batch, flat ids, lengths) in input order: by Ray tasks, in this process, or by a process pool."""
    if executor == "ray":
        yield from _ray_encoded(batches, str(tok.path), workers, ray_address)
    elif workers <= 1:
        for batch in batches:
            try:
                encoded = _encode([d.text for d in batch], tok)
            except ValueError as exc:
                raise _named(exc, batch) from None
            yield (batch, *encoded)
    else:
        yield from _pool_encoded(batches, str(tok.path), workers)


def _pool_encoded(batches: Iterator[list[Document]], tok_path: str,
                  workers: int) -> Iterator[tuple[list[Document], np.ndarray, np.ndarray]]:
    """Encoded by ``workers`` spawned processes, one batch per task, results in input order."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(tok_path,)) as pool:
        pending: list[list[Document]] = []

        def texts() -> Iterator[list[str]]:
            for batch in batches:
                pending.append(batch)
                yield [d.text for d in batch]

        results = pool.imap(_encode, texts(), chunksize=1)
        while True:
            try:
                flat, lengths = next(results)
            except StopIteration:
                break
            except ValueError as exc:
                raise _named(exc, pending[0]) from None
            yield pending.pop(0), flat, lengths


def _publish(tmp: Path, out: Path) -> None:
    """Replace ``out/{train,val}`` with the finished shards of ``tmp``."""
    for split in ("train", "val"):
        shutil.rmtree(out / split, ignore_errors=True)
        (tmp / split).mkdir(parents=True, exist_ok=True)
        (tmp / split).rename(out / split)
    shutil.rmtree(tmp, ignore_errors=True)


def _manifest(out: Path, inputs: list, tok, val_fraction: float, shard_tokens: int) -> None:
    """The lineage manifest: record files + tokenizer -> shards (a curated directory counts by its data/)."""
    from pretrain.lineage.manifest import write_manifest

    records = []
    for i in inputs:
        p = Path(i)
        records.append(p / "data" if (p / "data").is_dir() and (p / "stats.json").is_file() else p)
    tokenizer = [("tokenizer", Path(tok.path))] if tok.path is not None else []
    write_manifest(out, "tokenize", inputs=[("records", p) for p in records] + tokenizer,
                   outputs=["train", "val", "stats.json"],
                   config={"val_fraction": val_fraction, "shard_tokens": shard_tokens, "tokenizer_hash": tok.hash})
