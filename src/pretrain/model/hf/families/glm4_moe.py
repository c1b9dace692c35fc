"""Glm4Moe (Glm4MoeForCausalLM): sigmoid routing with a score-correction bias, shared experts, leading
dense layers; optional QK-norm."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pretrain.model.config import MoEConfig
from pretrain.model.hf.families.base import Arch, register_family
from pretrain.model.hf.refuse import refuse_import
from pretrain.model.hf.ropeconfig import rope_parameters


@dataclass(frozen=True)
class Glm4Moe(Arch):
    def routes_like(self, cfg) -> bool:
        return cfg.moe.router_score == "sigmoid"

    def export_config(self, cfg) -> dict:
        m = cfg.moe
        # Glm4Moe sums n_shared_experts experts as one MLP of moe_intermediate_size * n_shared_experts.
        return {"moe_intermediate_size": cfg.expert_hidden_dim, "n_routed_experts": m.n_experts,
                "num_experts_per_tok": m.top_k, "n_shared_experts": m.n_shared,
                "first_k_dense_replace": m.first_dense_layers, "n_group": 1, "topk_group": 1, "norm_topk_prob": True,
                "routed_scaling_factor": 1.0, "use_qk_norm": cfg.qk_norm, "partial_rotary_factor": 1.0,
                "num_nextn_predict_layers": 0,
                "rope_parameters": rope_parameters(cfg) | {"partial_rotary_factor": 1.0}}

    def import_config(self, cfg, hf: dict, where: str) -> None:
        prf = hf.get("partial_rotary_factor", (hf.get("rope_parameters") or {}).get("partial_rotary_factor", 0.5))
        if float(prf) != 1.0:
            raise refuse_import(where, "partial_rotary_factor", prf, "is not supported (1.0 only)")
        for key, ok in (("n_group", 1), ("routed_scaling_factor", 1.0)):
            if float(hf.get(key, ok)) != ok:
                raise refuse_import(where, key, hf[key], f"is not supported ({ok} only)")
        cfg.moe = MoEConfig(n_experts=int(hf["n_routed_experts"]), top_k=int(hf["num_experts_per_tok"]),
                            n_shared=int(hf.get("n_shared_experts", 0)), expert_hidden=int(hf["moe_intermediate_size"]),
                            first_dense_layers=int(hf.get("first_k_dense_replace", 0)), router_score="sigmoid")

    def moe_layer_names(self, cfg, i: int, legacy: bool) -> dict[str, str]:
        names = super().moe_layer_names(cfg, i, legacy)
        if cfg.moe.balance == "aux_free":  # the routing bias only where our forward uses it
            names[f"layers.{i}.ffn.router_bias"] = f"model.layers.{i}.mlp.gate.e_score_correction_bias"
        return names

    def export_tensors(self, tensors, cfg, dtype):
        """Glm4Moe always builds a shared MLP and a routing bias. Zero-width shared weights contribute
        exactly nothing; a zero bias changes no choice (written when balance != aux_free, where our forward
        ignores the bias: exporting ours would make transformers route differently from us)."""
        for i in range(cfg.n_layers):
            if not cfg.is_moe_layer(i):
                continue
            p = f"model.layers.{i}.mlp."
            if not cfg.moe.n_shared:
                empty = torch.zeros(0, cfg.dim, dtype=dtype)
                tensors |= {p + "shared_experts.gate_proj.weight": empty, p + "shared_experts.up_proj.weight": empty,
                            p + "shared_experts.down_proj.weight": empty.t().contiguous()}
            if cfg.moe.balance != "aux_free":
                tensors[p + "gate.e_score_correction_bias"] = torch.zeros(cfg.moe.n_experts, dtype=torch.float32)
        return tensors


GLM4_MOE = register_family(Glm4Moe("glm4_moe", "Glm4MoeForCausalLM", free=frozenset({"qk_norm"}), moe=True,
                                   routing_bias=True, order=110))
