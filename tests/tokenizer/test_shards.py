"""Token shards: index consistency, lineage, split by id, dtype, header checks, parallel == serial."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pretrain.data.record import write_jsonl
from pretrain.data.shards import ShardSet, ShardWriter, load_split, lookup, read_header, token_dtype
from pretrain.data.split import is_heldout
from pretrain.data.tokenize import tokenize_corpus


@pytest.fixture(scope="module")
def tokens_dir(corpus, tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_jsonl(root / "in" / "part1.jsonl.zst", corpus[:100])
    write_jsonl(root / "in" / "part2.jsonl", corpus[100:])
    stats = tokenize_corpus(root / "in", tokenizer, root / "tokens", val_fraction=0.2, workers=1)
    return root / "tokens", stats


def test_documents_decode_back_to_the_curated_text(tokens_dir, corpus, tokenizer):
    out, stats = tokens_dir
    by_id = {d.id: d for d in corpus}
    seen = []
    for split in ("train", "val"):
        for domain, ss in load_split(out, split, tokenizer.hash).items():
            for i in range(ss.num_docs):
                src = ss.doc_source(i)
                doc = by_id[src.id]
                assert doc.domain == domain
                assert tokenizer.decode(ss.doc_tokens(i).tolist()) == doc.text
                assert ss.doc_bytes(i) == len(doc.text.encode("utf-8"))
                assert src.source == doc.source
                assert (split == "val") == is_heldout(doc.id, 0.2)
                seen.append(src.id)
            # the concatenation of all documents is exactly the flat token file
            assert np.array_equal(ss.gather(np.arange(ss.num_docs)), np.asarray(ss.shards[0].tokens))
    assert sorted(seen) == sorted(d.id for d in corpus)  # no record lost or duplicated
    assert stats["documents"] == len(corpus)
    assert stats["tokens"] == sum(len(tokenizer.encode(d.text)) for d in corpus)


def test_lineage_from_token_to_record(tokens_dir, corpus):
    out, _ = tokens_dir
    ss = load_split(out, "train")["code"]
    path, j = ss.lineage(3)
    src = lookup(path, j)
    assert src == ss.doc_source(3)
    assert src.source.startswith("synthetic:code:")


def test_header_dtype_and_meta(tokens_dir, tokenizer):
    out, _ = tokens_dir
    shard = out / "train" / "prose" / "shard_00000.bin"
    h = read_header(shard)
    assert h.itemsize == 2 and h.tokenizer_hash == tokenizer.hash and h.vocab_size == tokenizer.vocab_size
    meta = json.loads((shard.parent / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["documents"] == h.num_docs
    assert token_dtype(70_000) == np.uint32


def test_wrong_tokenizer_is_a_one_line_error(tokens_dir):
    out, _ = tokens_dir
    with pytest.raises(ValueError, match=r"shard_00000.bin: shard was written by tokenizer") as e:
        load_split(out, "train", "0" * 64)
    assert "\n" not in str(e.value)


def test_corrupt_and_missing_shards(tokens_dir, tmp_path):
    out, _ = tokens_dir
    bad = tmp_path / "d"
    bad.mkdir()
    (bad / "shard_00000.bin").write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="bad magic"):
        ShardSet(bad)
    good = (out / "train" / "math" / "shard_00000.bin").read_bytes()
    (bad / "shard_00000.bin").write_bytes(good[:-2])
    with pytest.raises(ValueError, match="truncated"):
        ShardSet(bad)
    with pytest.raises(FileNotFoundError, match="token split directory not found"):
        load_split(tmp_path, "train")


def test_shard_rollover_and_uint32(tmp_path):
    w = ShardWriter(tmp_path / "x", "a" * 64, vocab_size=100_000, shard_tokens=10)
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 100_000, size=n) for n in (4, 7, 0, 12, 3)]
    for k, d in enumerate(docs):
        w.add(d, [len(d)], [len(d) * 3], [f"{k:016x}"], [f"src{k}"])
    w.close()
    ss = ShardSet(tmp_path / "x", "a" * 64)
    assert len(ss.shards) == 3 and ss.num_docs == 5  # [4, 7] [0, 12] [3]: a new shard past 10 tokens
    for k, d in enumerate(docs):
        assert np.array_equal(ss.doc_tokens(k), d) and ss.doc_source(k).source == f"src{k}"
    assert np.array_equal(ss.gather(np.array([3, 0, 2, 4])), np.concatenate([docs[3], docs[0], docs[4]]))
    with pytest.raises(ValueError, match="token id"):
        ShardWriter(tmp_path / "y", "a" * 64, vocab_size=10).add(np.array([11]), [1], [1], ["0" * 16], ["s"])


@pytest.mark.slow
def test_worker_processes_write_the_same_shards(tokens_dir, corpus, tokenizer, tmp_path):
    out, _ = tokens_dir
    write_jsonl(tmp_path / "in.jsonl", corpus)
    tokenize_corpus([tmp_path / "in.jsonl"], tokenizer.path, tmp_path / "tok", val_fraction=0.2, workers=2,
                    batch_docs=16)
    for split in ("train", "val"):
        a, b = load_split(out, split), load_split(tmp_path / "tok", split)
        assert set(a) == set(b)
        for d in a:
            assert np.array_equal(np.asarray(a[d].shards[0].tokens), np.asarray(b[d].shards[0].tokens))


def test_parquet_input_and_bad_records(tokenizer, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["hello 12", "world"], "domain": ["a", "b"]}), tmp_path / "x.parquet")
    stats = tokenize_corpus(tmp_path / "x.parquet", tokenizer, tmp_path / "t", val_fraction=0.0)
    assert stats["splits"]["train"]["a"]["documents"] == 1
    assert load_split(tmp_path / "t", "train")["b"].doc_source(0).source.endswith("x.parquet@1")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": 5}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        tokenize_corpus(tmp_path / "bad.jsonl", tokenizer, tmp_path / "t2", val_fraction=0.0)
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "nt.parquet")
    with pytest.raises(ValueError, match="no 'text' column"):
        tokenize_corpus(tmp_path / "nt.parquet", tokenizer, tmp_path / "t3", val_fraction=0.0)


def test_curated_directory_reads_only_kept_documents(corpus, tokenizer, tmp_path):
    cur = tmp_path / "curated"
    write_jsonl(cur / "data" / "kept.jsonl.zst", corpus[:8])
    write_jsonl(cur / "removed" / "dropped.jsonl.zst", corpus[8:16])
    (cur / "stats.json").write_text("{}")
    stats = tokenize_corpus(cur, tokenizer, tmp_path / "t", val_fraction=0.0)
    assert stats["documents"] == 8


def test_invalid_unicode_record_is_named(tokenizer, tmp_path):
    (tmp_path / "s.jsonl").write_text('{"text": "fine", "source": "a.txt:1"}\n'
                                      '{"text": "bad \\ud800 half", "source": "b.txt:7"}\n')
    with pytest.raises(ValueError, match=r"b.txt:7: cannot tokenize record: text #1 is not valid Unicode"):
        tokenize_corpus(tmp_path / "s.jsonl", tokenizer, tmp_path / "t", val_fraction=0.0)
    assert not (tmp_path / "t" / "train").exists()  # nothing half-written
