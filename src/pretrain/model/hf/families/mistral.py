"""Mistral (MistralForCausalLM): one sliding window for every layer."""

from __future__ import annotations

from pretrain.model.hf.families.base import Arch, register_family

MISTRAL = register_family(Arch("mistral", "MistralForCausalLM", windows="all", order=40))
