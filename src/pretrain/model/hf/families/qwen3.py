"""Qwen3 (Qwen3ForCausalLM): per-head QK-norm, optional biases, per-layer sliding windows."""

from __future__ import annotations

from pretrain.model.hf.families.base import BIAS, Arch, register_family

QWEN3 = register_family(Arch("qwen3", "Qwen3ForCausalLM", required={"qk_norm": True}, free=BIAS, windows="layers",
                             attention_bias="all", order=20))
