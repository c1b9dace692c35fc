"""Helpers shared by the model tests: tiny configs and a tiny byte-level BPE tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

from pretrain.model.config import ModelConfig

SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"]


def tiny_config(**overrides) -> ModelConfig:
    base = dict(vocab_size=96, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32, multiple_of=16)
    base.update(overrides)
    return ModelConfig(**base)


def build_tokenizer(path: Path, vocab_size: int = 300) -> Path:
    """Train a small byte-level BPE with our special tokens on a few sentences (milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = ["To be, or not to be, that is the question.", "def add(a, b):\n    return a + b\n"] * 20
    tok.train_from_iterator(text, trainer)
    tok.save(str(path))
    return path


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Move every weight off its initial value (zero projections and closed gates would hide the levers)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


def decode_with_cache(model, x: torch.Tensor, prefill: int):
    """Logits of ``x`` computed through a KV cache: ``prefill`` tokens at once, then one at a time; also
    returns the cache."""
    cache = model.new_cache(x.shape[0], x.shape[1])
    steps = [model(x[:, :prefill], cache=cache).logits]
    steps += [model(x[:, t:t + 1], cache=cache).logits for t in range(prefill, x.shape[1])]
    return torch.cat(steps, dim=1), cache
