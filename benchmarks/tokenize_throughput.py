"""End-to-end `pretrain tokenize` speed against the raw `tokenizers` encode_batch on the same text.

Real text: the Python standard library sources of this interpreter (code) written as a JSONL.zst
corpus. A byte-level BPE tokenizer is trained on a sample, then side by side in one run:
- raw: ``Tokenizer.encode_batch`` (and ``encode_batch_fast``) on the texts already in memory;
- ours: ``tokenize_corpus`` from the compressed JSONL file to finished shards (read, decompress, parse,
  encode, split, write index), with 1 process (Rust thread pool) and with N worker processes.
Prints MB/s and the ratio to raw encode_batch (goal >= 0.8). Usage::

    python benchmarks/tokenize_throughput.py [--quick] [--mb 20]
"""

from __future__ import annotations

import argparse
import os
import sysconfig
import tempfile
import time
from pathlib import Path

from pretrain.data.record import Document, write_jsonl
from pretrain.data.tokenize import tokenize_corpus
from pretrain.tokenizer import TokenizerConfig, train_tokenizer


def stdlib_docs(max_bytes: int) -> list[Document]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for f in sorted(root.rglob("*.py")):
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs.append(Document(text=text, source=str(f), domain="code"))
        total += len(text.encode("utf-8"))
        if total >= max_bytes:
            break
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 MB of text instead of 20 MB")
    ap.add_argument("--mb", type=float, default=0, help="MB of text to encode")
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    mb = args.mb or (4 if args.quick else 20)
    docs = stdlib_docs(int(mb * 1e6))
    texts = [d.text for d in docs]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_jsonl(tmp / "corpus.jsonl.zst", docs)
        tok = train_tokenizer(docs, TokenizerConfig(vocab_size=args.vocab, sample_bytes_per_domain=2_000_000),
                              tmp / "tok")
        print(f"{len(docs)} documents, {n_bytes / 1e6:.1f} MB, vocab {tok.vocab_size}, {cores} cores")
        tok.hf.encode_batch_fast(texts[:50])  # warm up the thread pool

        t0 = time.perf_counter()
        tok.hf.encode_batch(texts, add_special_tokens=False)
        raw = n_bytes / 1e6 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        tok.hf.encode_batch_fast(texts, add_special_tokens=False)
        raw_fast = n_bytes / 1e6 / (time.perf_counter() - t0)
        print(f"{'setting':44s} {'MB/s':>8s} {'vs encode_batch':>16s}")
        print(f"{'raw encode_batch (in memory)':44s} {raw:8.2f} {1.0:15.2f}x")
        print(f"{'raw encode_batch_fast (in memory)':44s} {raw_fast:8.2f} {raw_fast / raw:15.2f}x")
        for workers in sorted({1, cores}):
            t0 = time.perf_counter()
            stats = tokenize_corpus(tmp / "corpus.jsonl.zst", tok, tmp / f"tokens{workers}", val_fraction=0.05,
                                    workers=workers)
            mbps = n_bytes / 1e6 / (time.perf_counter() - t0)
            label = f"tokenize_corpus end to end, workers={workers}"
            print(f"{label:44s} {mbps:8.2f} {mbps / raw:15.2f}x   ({stats['tokens']} tokens)")


if __name__ == "__main__":
    main()
