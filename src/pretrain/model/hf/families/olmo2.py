"""OLMo 2 (Olmo2ForCausalLM): post-norm blocks, QK-norm over the whole projection."""

from __future__ import annotations

from pretrain.model.hf.families.base import BIAS, Arch, register_family

OLMO2 = register_family(Arch("olmo2", "Olmo2ForCausalLM",
                             required={"qk_norm": True, "qk_norm_scope": "all", "norm_placement": "post"},
                             free=BIAS, attention_bias="all", order=50))
