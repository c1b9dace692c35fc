"""Mixtral (MixtralForCausalLM): softmax routing, no QK-norm, no shared or leading dense layers; written in
its original hub layout (``block_sparse_moe``, w1/w2/w3)."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.model.config import MoEConfig
from pretrain.model.hf.families.base import Arch, register_family
from pretrain.model.hf.families.qwen3_moe import n_experts


@dataclass(frozen=True)
class Mixtral(Arch):
    def routes_like(self, cfg) -> bool:
        m = cfg.moe
        return m.router_score != "sigmoid" and not m.n_shared and not cfg.qk_norm and not m.first_dense_layers

    def export_config(self, cfg) -> dict:
        return {"num_local_experts": cfg.moe.n_experts, "num_experts_per_tok": cfg.moe.top_k,
                "intermediate_size": cfg.expert_hidden_dim, "router_jitter_noise": 0.0, "output_router_logits": False}

    def import_config(self, cfg, hf: dict, where: str) -> None:
        cfg.moe = MoEConfig(n_experts=n_experts(hf, where), top_k=int(hf["num_experts_per_tok"]),
                            expert_hidden=int(hf["intermediate_size"]), router_score="softmax", balance="aux_loss")

    def moe_layer_names(self, cfg, i: int, legacy: bool) -> dict[str, str]:
        if not legacy:  # transformers' own layout (what import reads, after unfusing)
            return super().moe_layer_names(cfg, i, legacy)
        ours, hf = f"layers.{i}.ffn", f"model.layers.{i}.block_sparse_moe"
        names = {f"{ours}.router.weight": f"{hf}.gate.weight"}
        for e in range(cfg.moe.n_experts):
            for a, b in (("gate", "w1"), ("down", "w2"), ("up", "w3")):
                names[f"{ours}.experts.{e}.{a}.weight"] = f"{hf}.experts.{e}.{b}.weight"
        return names


MIXTRAL = register_family(Mixtral("mixtral", "MixtralForCausalLM", windows="all", moe=True, order=130))
