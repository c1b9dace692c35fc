"""Named presets: partial run configs merged over the defaults (a config file can start from one).

Shapes follow published models where named (GPT-2 124M: 12 x 768, 12 heads, context 1024; Llama 3.2 1B:
16 x 2048, 32 heads, 8 KV heads, SwiGLU 8192, RoPE base 500000 with Llama-3 scaling).
"""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    # Seconds on a CPU: for tests. fp32 pinned, so a test's numbers are the same on every CPU ("auto" is
    # bf16 where the CPU multiplies bf16 natively).
    "tiny": {
        "name": "tiny",
        "data": {"inputs": ["builtin"]},
        "tokenizer": {"vocab_size": 512, "sample_bytes_per_domain": 200_000},
        "model": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "max_seq_len": 64, "multiple_of": 32},
        "train": {"seq_len": 64, "micro_batch": 4, "max_steps": 30, "warmup_steps": 5, "lr": 3e-3, "log_interval": 5,
                  "precision": "fp32"},
        "eval": {"batch_size": 8, "max_docs_per_domain": 10, "max_tokens_per_domain": 4096, "sample_tokens": 16},
    },
    # The default recipe of `pretrain quickstart`, taken from the CPU speedrun (docs/performance.md): for a
    # few minutes of 2-core CPU a small model (2 x 128, 1024-token vocabulary, context 256, 4,096 tokens a
    # step: nanochat's depth-2 shape) with nanochat's levers: Muon (Polar Express, NorMuon, cautious weight
    # decay, momentum 0.85 -> 0.97 -> 0.90) for the block matrices, untied embeddings and head at their own
    # AdamW rates, a value embedding in the last layer, the smear gate and per-layer residual / embedding
    # scalars, ReLU^2 plain MLP, QK-norm, logit soft-capping, zero-initialised output projections, a 65%
    # warm-down to 5%, and torch.compile (its compile time inside the budget; eager without a C++ compiler).
    "quickstart": {
        "name": "quickstart",
        "data": {"inputs": ["builtin"]},
        "tokenizer": {"vocab_size": 1024, "sample_bytes_per_domain": 4_000_000},
        "model": {"dim": 128, "n_layers": 2, "n_heads": 2, "max_seq_len": 256, "activation": "relu2",
                  "mlp_gated": False, "tie_embeddings": False, "value_embeddings": "-V", "logit_softcap": 15.0,
                  "qk_norm": True, "zero_init_proj": True, "smear_gate": True, "x0_mix": True},
        "train": {"seq_len": 256, "micro_batch": 16, "max_steps": 100_000, "warmup_steps": 50, "lr": 5e-3,
                  "optimizer": "muon",
                  "muon": {"lr": 0.02, "ns": "polar_express", "beta2": 0.9, "cautious_wd": True,
                           "momentum_warmup": 400, "momentum_start": 0.85, "momentum": 0.97, "momentum_final": 0.90},
                  "embed_lr": 0.05, "head_lr": 0.002, "schedule": "wsd",
                  "decay_fraction": 0.65, "min_lr_ratio": 0.05, "compile": True, "time_limit_s": 300.0,
                  "log_interval": 10},
        "eval": {"batch_size": 32, "max_docs_per_domain": 100, "max_tokens_per_domain": 60_000},
    },
    # A bigger CPU model (an hour or so).
    "small": {
        "name": "small",
        "tokenizer": {"vocab_size": 8192},
        "model": {"dim": 384, "n_layers": 6, "n_heads": 6, "max_seq_len": 512},
        "train": {"seq_len": 512, "micro_batch": 8, "max_steps": 5000, "warmup_steps": 200, "lr": 1e-3},
    },
    "gpt2-124m": {
        "name": "gpt2-124m",
        "tokenizer": {"vocab_size": 50304},
        "model": {"dim": 768, "n_layers": 12, "n_heads": 12, "max_seq_len": 1024, "tie_embeddings": True},
        "train": {"seq_len": 1024, "micro_batch": 16, "grad_accum": 32, "max_steps": 19073, "warmup_steps": 700,
                  "lr": 6e-4},
    },
    "llama-1b": {
        "name": "llama-1b",
        "tokenizer": {"vocab_size": 128256},
        "model": {"dim": 2048, "n_layers": 16, "n_heads": 32, "n_kv_heads": 8, "ffn_hidden": 8192,
                  "max_seq_len": 2048, "rope_theta": 500000.0, "tie_embeddings": True},
        "train": {"seq_len": 2048, "micro_batch": 4, "grad_accum": 64, "max_steps": 100000, "warmup_steps": 2000,
                  "lr": 3e-4},
    },
}
