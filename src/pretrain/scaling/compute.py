"""Compute accounting of a run: parameters, FLOPs per token, and the tokens a FLOP budget buys.

The counts come from the model config (:mod:`pretrain.model.size`, which a model test checks against
the built model): training FLOPs per token = 6 N_matmul + 12 L H d_head T, i.e. the familiar C = 6ND
(Kaplan et al. 2020) plus the attention-score term that 6ND leaves out (PaLM appendix B), which matters
for small models at long context. N for scaling-law fits is the total parameter count, embeddings
included, as in Hoffmann et al. 2022; the non-embedding count (Kaplan et al.) is reported beside it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from pretrain.config import RunConfig
from pretrain.train.schedule import tokens_per_step as train_tokens_per_step


@dataclass
class RunCompute:
    params: int
    """All parameters (embedding counted once when tied; MTP modules included)."""
    non_embedding_params: int
    """Without the token embedding and an untied LM head (Kaplan et al.)."""
    active_params: int
    """Parameters one token passes through (MoE: top_k routed plus shared experts)."""
    flops_per_token: float
    """Training FLOPs per token at the run's sequence length (6 N_matmul + attention)."""
    attention_fraction: float
    """Share of flops_per_token spent on attention scores and values."""
    seq_len: int

    def to_dict(self) -> dict:
        return asdict(self)


def model_with_vocab(cfg: RunConfig, vocab_size: int | None = None):
    """The run's ModelConfig with vocab_size filled in (from ``vocab_size`` or the tokenizer config)."""
    model = copy.deepcopy(cfg.model)
    if vocab_size:
        model.vocab_size = vocab_size
    elif model.vocab_size <= 0:
        model.vocab_size = cfg.tokenizer.vocab_size
    if model.vocab_size <= 0:
        raise ValueError("model.vocab_size is 0 and no tokenizer vocab_size to take it from")
    return model


def run_compute(cfg: RunConfig, vocab_size: int | None = None) -> RunCompute:
    """Parameter counts and training FLOPs per token of the run's model at ``cfg.train.seq_len``."""
    model = model_with_vocab(cfg, vocab_size)
    seq = cfg.train.seq_len
    fpt = model.flops_per_token(seq)
    attention = 12.0 * (model.n_layers + model.mtp.depth) * model.n_heads * model.head_dim * seq
    return RunCompute(
        params=model.num_params(),
        non_embedding_params=model.num_params(exclude_embeddings=True),
        active_params=model.num_active_params(),
        flops_per_token=fpt,
        attention_fraction=attention / fpt,
        seq_len=seq,
    )


def tokens_for_budget(flops_per_token: float, compute: float) -> float:
    """Training tokens that spend ``compute`` FLOPs."""
    if compute <= 0 or flops_per_token <= 0:
        raise ValueError(f"compute and FLOPs per token must be > 0 (got {compute}, {flops_per_token})")
    return compute / flops_per_token


def steps_for_budget(cfg: RunConfig, flops_per_token: float, compute: float) -> int:
    """Optimizer steps of ``cfg``'s batch that spend ``compute`` FLOPs (at least 1, rounded to nearest)."""
    return max(1, round(tokens_for_budget(flops_per_token, compute) / tokens_per_step(cfg)))


def tokens_per_step(cfg: RunConfig, world: int = 1) -> int:
    """Tokens per optimizer step of ``cfg`` trained on ``world`` processes (pretrain.train.schedule's
    definition, the one the trainer trains: train.global_batch when set, else micro_batch x grad_accum x
    world, times seq_len)."""
    return train_tokens_per_step(cfg.train, world)
