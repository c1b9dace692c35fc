"""Web documents: a WET file (Common Crawl's text records) curated, tokenized and trained on; trace
names each document by its URL, capture date and WARC record id, and finds it again by its URL."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("harbor lantern meadow silver orchard thunder valley window river candle bridge winter").split()


def _record(uri: str, date: str, text: str, rid: str) -> bytes:
    block = text.encode()
    head = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: {uri}\r\nWARC-Date: {date}\r\n"
            f"WARC-Record-ID: <urn:uuid:{rid}>\r\nContent-Type: text/plain\r\nContent-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def test_trace_by_url_names_capture_date_and_record_id(tmp_path: Path):
    from pretrain.config import resolve
    from pretrain.data.curate import CurateConfig, curate
    from pretrain.data.record import read_dir
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.lineage.trace import trace_doc, trace_step
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer
    from pretrain.train import train

    rng = random.Random(5)
    wet = tmp_path / "crawl" / "CC-MAIN-0001.warc.wet"
    wet.parent.mkdir()
    wet.write_bytes(b"".join(
        _record(f"https://site{i}.example.org/page", f"2024-03-02T08:{i:02d}:00Z",
                ". ".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(8)) + ".", f"w{i}")
        for i in range(30)))
    run = tmp_path / "run"
    curate([wet.parent], run / "curated", CurateConfig(steps=[{"type": "exact_dedup"}]), workers=1, progress=False)
    data = run / "curated" / "data"
    train_tokenizer(read_dir(data), TokenizerConfig(vocab_size=300, n_reserved=2), run / "tokenizer", inputs=[data])
    tokenize_corpus(data, run / "tokenizer" / "tokenizer.json", run / "tokens", val_fraction=0.2, workers=1)
    cfg = resolve("tiny", [f'data.tokens="{run / "tokens"}"', f'tokenizer.path="{run / "tokenizer" / "tokenizer.json"}"',
                           "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1",
                           "model.max_seq_len=32", "train.seq_len=32", "train.micro_batch=4", "train.max_steps=2",
                           "train.warmup_steps=1", "train.peak_flops=1e11"])
    train(cfg, run, progress=False)
    doc = trace_step(run, 1)["documents"][0]
    url = doc["source"]
    assert url.startswith("https://site") and doc["origin"]["raw"]["path"] == str(wet.resolve())
    i = int(url.split("site")[1].split(".")[0])
    assert doc["origin"]["raw"]["date"] == f"2024-03-02T08:{i:02d}:00Z"
    assert doc["origin"]["raw"]["warc_record_id"] == f"<urn:uuid:w{i}>" and "offset" in doc["origin"]["raw"]
    got = trace_doc(run, url)
    assert got["id"] == doc["id"] and got["source"] == url and 1 in [s["step"] for s in got["steps"]]
