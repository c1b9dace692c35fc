"""The continued-pre-training recipe of docs/model.md end to end: a (small, random) Qwen3 with its own
tokenizer -> `pretrain import hf` -> `pretrain tokenize` the built-in corpus with the model's tokenizer ->
`pretrain train OUT/continue.toml` (train.init_from) -> `pretrain export hf` -> transformers."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from pretrain.cli import app

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def _hf_style_tokenizer(directory, corpus):
    """A byte-level BPE with Qwen-like special tokens (no <|bos|>), saved the way the hub ships it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from pretrain.data.tokenize import read_documents

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((d.text for d in read_documents([str(corpus)])), trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                                pad_token="<|endoftext|>")
    fast.save_pretrained(directory)
    return fast


def test_import_tokenize_train_export_round_trip(tmp_path):
    from pretrain.data.builtin import build_builtin_corpus
    from pretrain.model.io import load_model, resolve_checkpoint
    from pretrain.tokenizer import load_tokenizer

    build_builtin_corpus(tmp_path / "corpus", domains=("literature", "code"), max_docs=30)
    fast = _hf_style_tokenizer(tmp_path / "qwen", tmp_path / "corpus")
    cfg = transformers.Qwen3Config(vocab_size=416, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                   max_position_embeddings=64, eos_token_id=fast.eos_token_id,
                                   pad_token_id=fast.pad_token_id, bos_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(0)
    transformers.Qwen3ForCausalLM(cfg).save_pretrained(tmp_path / "qwen")

    runner = CliRunner()
    ckpt, run = tmp_path / "imported", tmp_path / "run"
    for args in (["import", "hf", str(tmp_path / "qwen"), "--out", str(ckpt)],
                 ["tokenize", str(tmp_path / "corpus"), "--tokenizer", str(ckpt), "--out", str(tmp_path / "tokens"),
                  "--workers", "1", "--val-fraction", "0.3"],
                 ["train", str(ckpt / "continue.toml"), f"data.tokens={json.dumps(str(tmp_path / 'tokens'))}",
                  "train.max_steps=20", "train.seq_len=64", "train.micro_batch=4", "train.warmup_steps=2",
                  "train.lr=1e-3", "train.device=\"cpu\"", "eval.max_docs_per_domain=2",
                  "eval.max_tokens_per_domain=256", "--run-dir", str(run), "--no-progress"],
                 ["generate", str(run), "--prompt", "To be", "--greedy", "-n", "4"],
                 ["export", "hf", str(run), "--out", str(tmp_path / "back")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{args[:2]}: {result.output}{result.exception!r}"

    tok = load_tokenizer(ckpt)  # the model's own special tokens: documents are delimited by <|endoftext|>
    assert tok.eos_id == tok.bos_id == fast.eos_token_id
    trained = load_model(resolve_checkpoint(run))
    assert not torch.equal(trained.state_dict()["tok_emb.weight"], load_model(ckpt).state_dict()["tok_emb.weight"])
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back", dtype=torch.float32).eval()
    assert type(back).__name__ == "Qwen3ForCausalLM"
    ids = transformers.AutoTokenizer.from_pretrained(tmp_path / "back")("To be, or not to be")["input_ids"]
    assert ids == fast("To be, or not to be")["input_ids"]  # the tokenizer came back unchanged
    x = torch.tensor([ids * 4])
    with torch.no_grad():
        torch.testing.assert_close(trained.eval()(x).logits, back(x).logits, rtol=0, atol=1e-4)
