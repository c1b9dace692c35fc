"""Qwen2 (Qwen2ForCausalLM): q/k/v biases always, per-layer sliding windows."""

from __future__ import annotations

from pretrain.model.hf.families.base import Arch, register_family

QWEN2 = register_family(Arch("qwen2", "Qwen2ForCausalLM", required={"qkv_bias": True}, windows="layers",
                             attention_bias="qkv", order=30))
