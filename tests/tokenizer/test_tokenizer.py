"""Byte-level BPE: exact round trips, digit splitting, special tokens, transformers compatibility."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pretrain.configlib import ConfigError, validate
from pretrain.tokenizer import TokenizerConfig, load_tokenizer, specials, train_tokenizer

_settings = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_settings
@given(st.text())
def test_any_unicode_text_round_trips(tokenizer, text):
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < tokenizer.vocab_size for i in ids)


@_settings
@given(st.binary(max_size=200))
def test_any_bytes_round_trip_with_byte_fallback(tokenizer, data):
    ids = tokenizer.encode_bytes(data)
    assert tokenizer.decode_bytes(ids) == data


def test_invalid_utf8_uses_byte_tokens(tokenizer):
    data = b"ok \xff\xfe tail \xc3"
    ids = tokenizer.encode_bytes(data)
    assert tokenizer.decode_bytes(ids) == data
    byte_char = specials.bytes_to_unicode()
    assert tokenizer.hf.token_to_id(byte_char[0xFF]) in ids


def test_digits_are_split_one_by_one(tokenizer):
    text = "x = 1234567890 + 42"
    toks = [tokenizer.decode([i]) for i in tokenizer.encode(text)]
    digit_tokens = [t for t in toks if any(c.isdigit() for c in t)]
    assert digit_tokens and all(len(t.strip()) == 1 for t in digit_tokens)
    assert "".join(t.strip() for t in digit_tokens) == "123456789042"


def test_special_tokens_have_fixed_ids_and_never_come_from_text(tokenizer):
    ids = [tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tokenizer.fim_prefix_id,
           tokenizer.fim_middle_id, tokenizer.fim_suffix_id]
    assert ids == list(range(6))
    assert tokenizer.hf.token_to_id("<|reserved_3|>") == 9
    text = "".join(specials.special_tokens(4)) + " <|eos|>x<|bos|>"
    enc = tokenizer.encode(text)
    assert not set(enc) & set(range(10))
    assert tokenizer.decode(enc) == text
    assert tokenizer.decode([tokenizer.eos_id]) == "<|eos|>"


def test_vocab_size_and_merges_learned(tokenizer, corpus):
    assert tokenizer.vocab_size == 600
    text = corpus[1].text  # prose
    assert len(tokenizer.encode(text)) < len(text.encode("utf-8")) / 2  # merges compress


def test_saved_file_and_hash(tokenizer):
    assert tokenizer.path.name == "tokenizer.json"
    again = load_tokenizer(tokenizer.path.parent)
    assert again.hash == tokenizer.hash and len(again.hash) == 64
    assert json.loads(tokenizer.path.read_text())["model"]["type"] == "BPE"


def test_transformers_loads_and_encodes_identically(tokenizer, corpus):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer.path), split_special_tokens=True)
    texts = [d.text for d in corpus[:12]] + ["emoji 🚀 and <|eos|> and 3.14159", "  leading spaces\t\r\n"]
    for t in texts:
        assert hf.encode(t, add_special_tokens=False) == tokenizer.encode(t)
        assert hf.decode(tokenizer.encode(t), clean_up_tokenization_spaces=False) == t
    assert hf.convert_tokens_to_ids("<|fim_middle|>") == tokenizer.fim_middle_id


def test_domain_balanced_sample_caps_each_domain_and_ignores_order(corpus):
    from pretrain.tokenizer.train import domain_balanced_sample

    counts: dict[str, int] = {}
    texts = list(domain_balanced_sample(corpus, 5000, 0.0, counts))
    assert set(counts) == {"code", "prose", "math", "multilingual"}
    assert all(4997 <= c <= 5000 for c in counts.values())  # the last document is cut on a character
    assert sum(len(t.encode()) for t in texts) == sum(counts.values())
    # a hash-chosen subset: the same whatever the input order (a first-N sample would differ)
    again = list(domain_balanced_sample(list(reversed(corpus)), 5000, 0.0))
    assert sorted(again) == sorted(texts)


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer not found"):
        load_tokenizer(tmp_path / "nope.json")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tokenizer.json"):
        load_tokenizer(bad)
    with pytest.raises(ConfigError, match="tokenizer.vocab_size"):
        validate(TokenizerConfig(vocab_size=100), "tokenizer")
    with pytest.raises(ValueError, match="no documents"):
        train_tokenizer([], TokenizerConfig(vocab_size=300), tmp_path / "t")
