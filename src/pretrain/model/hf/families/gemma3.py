"""Gemma 3 (Gemma3ForCausalLM): sandwich (1 + w) norms, embedding scale, GeGLU, QK-norm, local/global
layers with their own RoPE bases; the 4B+ multimodal checkpoints (``gemma3``) import their decoder."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.model.hf.families.base import (
    BIAS,
    HF_ACTIVATIONS,
    Arch,
    register_family,
)
from pretrain.model.hf.refuse import refuse_export, refuse_import
from pretrain.model.hf.ropeconfig import rope_from_hf, rope_parameters


@dataclass(frozen=True)
class Gemma3(Arch):
    def check_extra(self, cfg) -> None:
        if cfg.rope_scaling.type != "none" and cfg.sliding_window and not cfg.rope_theta_local:
            raise refuse_export("rope_theta_local", 0.0, self, "its windowed layers never use rope_scaling; set their base")

    def export_config(self, cfg) -> dict:
        local = ({"rope_type": "default", "rope_theta": cfg.rope_theta_local} if cfg.rope_theta_local
                 else rope_parameters(cfg))
        scalar = cfg.attn_scale ** -2 if cfg.attn_scale else cfg.head_dim
        scalar = round(scalar) if abs(scalar - round(scalar)) < 1e-6 else scalar  # transformers wants an int
        return {"hidden_activation": HF_ACTIVATIONS[cfg.activation], "query_pre_attn_scalar": scalar,
                "rope_local_base_freq": local["rope_theta"],
                "rope_parameters": {"full_attention": rope_parameters(cfg), "sliding_attention": local},
                "final_logit_softcapping": cfg.logit_softcap or None, "attn_logit_softcapping": None,
                "sliding_window": cfg.sliding_window or cfg.max_seq_len, "use_bidirectional_attention": False}

    def legacy_layer_types(self, hf: dict, n_layers: int) -> list[str]:
        # transformers 4 configs: every n-th layer full
        every = int(hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6)
        return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n_layers)]

    def rope_parameters(self, hf: dict) -> dict | None:
        params = hf.get("rope_parameters") or {}
        return params["full_attention"] if "full_attention" in params else None

    def import_config(self, cfg, hf: dict, where: str) -> None:
        if hf.get("use_bidirectional_attention"):
            raise refuse_import(where, "use_bidirectional_attention", True, "is not supported (causal only)")
        params = hf.get("rope_parameters") or {}
        if "sliding_attention" in params:
            local_theta, local, _ = rope_from_hf(hf, where, params["sliding_attention"])
            if local.type != "none":
                raise refuse_import(where, "rope_parameters.sliding_attention.rope_type", local.type,
                                    "is not supported")
        else:
            local_theta = float(hf.get("rope_local_base_freq") or 10000.0)
        if cfg.sliding_window:
            cfg.rope_theta_local = local_theta
        scalar = float(hf.get("query_pre_attn_scalar") or cfg.head_dim)
        cfg.attn_scale = 0.0 if scalar == cfg.head_dim else scalar ** -0.5
        cfg.logit_softcap = float(hf.get("final_logit_softcapping") or 0.0)
        # Gemma 3 keeps Gemma 2's attn_logit_softcapping key, but transformers' Gemma 3 never applies it (it
        # uses QK-norm instead), so neither do we: the imported model gives transformers' logits.
        cfg.tie_embeddings = bool(hf.get("tie_word_embeddings", True))


GEMMA3 = register_family(Gemma3(
    "gemma3_text", "Gemma3ForCausalLM",
    required={"qk_norm": True, "norm_placement": "sandwich", "norm_unit_offset": True, "scale_embeddings": True,
              "activation": "gelu_tanh"},
    free=BIAS | {"attn_scale", "logit_softcap", "rope_theta_local"}, windows="layers", attention_bias="all",
    order=60, wrapper_model_type="gemma3"))
