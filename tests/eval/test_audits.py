import json
import random

import pytest
from eval_toys import ByteTokenizer, NgramMemorizer, UniformByteModel, write_shards

from pretrain.data.shards import load_split
from pretrain.eval.contamination import audit_contamination, bundled_task_texts, ngram_hashes
from pretrain.eval.memorization import audit_memorization


def rand_text(rng, n):
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "seven", "blue", "quiet", "north"]
    return " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(n))


@pytest.fixture()
def corpus(tmp_path):
    rng = random.Random(0)
    planted = "The quick brown fox jumps over the lazy dog while the benchmark answer is forty-two."
    train = {"web": [rand_text(rng, 30) for _ in range(12)], "code": [rand_text(rng, 20) for _ in range(5)]}
    train["web"][7] = rand_text(rng, 10) + " " + planted + " " + rand_text(rng, 10)
    val = {"web": [rand_text(rng, 30) for _ in range(4)], "code": [rand_text(rng, 20) for _ in range(3)]}
    write_shards(tmp_path / "train", train)
    write_shards(tmp_path / "val", val)
    return tmp_path, train, val, planted


def test_ngram_hashes_are_positional_and_exact():
    h = ngram_hashes([1, 2, 3, 1, 2, 3], 3)
    assert len(h) == 4 and h[0] == h[3] and len(set(h.tolist())) == 3
    assert len(ngram_hashes([1, 2], 3)) == 0
    assert ngram_hashes([0, 0, 1], 2)[0] != ngram_hashes([0, 1, 0], 2)[0]


def test_contamination_audit_finds_planted_overlap(corpus):
    root, train, val, planted = corpus
    tok = ByteTokenizer()
    bench = {"quiz": [tok.encode("Q: unrelated question about gardening and soil?"),
                      tok.encode("Recall: " + planted[4:60]),
                      tok.encode("short")],
             "clean": [tok.encode("Entirely fresh text that appears nowhere in training at all.")]}
    res = audit_contamination(load_split(root, "train"), bench, n=13, max_hits=5)
    quiz = res["benchmarks"]["quiz"]
    assert quiz["contaminated_docs"] == 1 and quiz["contaminated_doc_indices"] == [1]
    assert quiz["docs_with_ngrams"] == 2  # "short" has no 13-gram
    assert 0 < quiz["ngram_overlap"] < 1
    hit = quiz["hits"][0]
    assert (hit["domain"], hit["doc"], hit["source"]) == ("web", 7, "web.txt:8")
    assert hit["shard"].endswith(".bin") and hit["matched_ngrams"] == len(" " + planted[4:60]) - 12  # the space after "Recall:" matches too
    assert res["benchmarks"]["clean"]["contaminated_docs"] == 0 and not res["benchmarks"]["clean"]["hits"]
    assert res["train_tokens"] == sum(len(t.encode()) for d in train.values() for t in d)
    json.dumps(res)


def test_ngrams_do_not_cross_training_document_boundaries(tmp_path):
    write_shards(tmp_path / "train", {"d": ["abcdefgh", "ijklmnop"]})
    res = audit_contamination(load_split(tmp_path, "train"), {"b": [list(b"ghij")]}, n=4)
    assert res["benchmarks"]["b"]["contaminated_docs"] == 0
    res = audit_contamination(load_split(tmp_path, "train"), {"b": [list(b"efgh")]}, n=4)
    assert res["benchmarks"]["b"]["contaminated_docs"] == 1


def test_bundled_task_texts_are_readable():
    texts = bundled_task_texts()
    assert set(texts) == {"pretrain_offline_ppl", "pretrain_offline_mc", "pretrain_offline_gen"}
    assert all(texts.values())


def test_memorization_audit_detects_a_memorizer(corpus):
    root, train, val, _ = corpus
    tok = ByteTokenizer()
    train_sets, val_sets = load_split(root, "train"), load_split(root, "val")
    model = NgramMemorizer([tok.encode(t) for d in train.values() for t in d], k=12)
    kw = dict(prefix_tokens=16, continuation_tokens=32, docs_per_domain=4, bos_id=tok.bos_id)
    res = audit_memorization(model, train_sets, val_sets, **kw)
    assert res["train"]["domains"]["web"]["exact_match_rate"] == 1.0
    assert res["train"]["domains"]["web"]["samples"] == 4
    assert res["heldout"]["domains"]["web"]["exact_match_rate"] == 0.0
    assert res["excess_exact_match"]["web"] == 1.0
    ex = res["train"]["domains"]["web"]["memorized_examples"][0]
    assert ex["source"].startswith("web.txt:") and "shard" in ex
    base = audit_memorization(UniformByteModel(), train_sets, None, **kw)
    assert base["train"]["overall"]["exact_match_rate"] == 0.0 and "heldout" not in base
    assert audit_memorization(model, train_sets, None, **kw) == {k: v for k, v in res.items()
                                                                   if k in ("prefix_tokens", "continuation_tokens", "train")}


def test_split_token_counts_match_the_documents(corpus):
    from pretrain.eval.heldout import split_token_counts

    root, train, _, _ = corpus
    counts = split_token_counts(root, 259, "train")
    for domain, texts in train.items():
        expect = [0] * 259
        for t in texts:
            for b in t.encode():
                expect[b] += 1
        assert counts[domain].tolist() == expect
    capped = split_token_counts(root, 259, "train", max_tokens_per_domain=100)
    assert all(c.sum() == 100 for c in capped.values())


def test_memorization_rejects_windows_beyond_the_context(corpus):
    from pretrain.model import ModelConfig, Transformer

    root, *_ = corpus
    model = Transformer(ModelConfig(vocab_size=259, dim=16, n_layers=1, n_heads=2, max_seq_len=32, multiple_of=16))
    with pytest.raises(ValueError, match="exceeds the model context 32"):
        audit_memorization(model, load_split(root, "train"), prefix_tokens=16, continuation_tokens=16)
