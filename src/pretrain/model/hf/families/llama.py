"""Llama (LlamaForCausalLM): the plain recipe, the lingua franca of serving stacks; optional biases."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.model.hf.families.base import BIAS, Arch, register_family


@dataclass(frozen=True)
class Llama(Arch):
    def export_config(self, cfg) -> dict:
        return {"pretraining_tp": 1}


LLAMA = register_family(Llama("llama", "LlamaForCausalLM", free=BIAS | {"mlp_bias"}, attention_bias="all", order=10))
