"""Qwen3-MoE (Qwen3MoeForCausalLM): softmax routing, QK-norm, leading dense layers (``mlp_only_layers``)."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.model.config import MoEConfig
from pretrain.model.hf.families.base import Arch, register_family
from pretrain.model.hf.refuse import refuse_import


def n_experts(hf: dict, where: str) -> int:
    # Older Qwen3-MoE configs say num_experts; transformers 5 writes num_local_experts.
    for key in ("num_experts", "num_local_experts"):
        if hf.get(key):
            return int(hf[key])
    raise refuse_import(where, "num_experts", None, "(or num_local_experts) must be set for an MoE model")


@dataclass(frozen=True)
class Qwen3Moe(Arch):
    def routes_like(self, cfg) -> bool:
        return cfg.moe.router_score != "sigmoid" and not cfg.moe.n_shared and cfg.qk_norm

    def export_config(self, cfg) -> dict:
        m = cfg.moe
        return {"num_experts": m.n_experts, "num_experts_per_tok": m.top_k,
                "moe_intermediate_size": cfg.expert_hidden_dim, "norm_topk_prob": True, "decoder_sparse_step": 1,
                "mlp_only_layers": list(range(m.first_dense_layers)), "use_sliding_window": False,
                "sliding_window": None, "output_router_logits": False}

    def import_config(self, cfg, hf: dict, where: str) -> None:
        sparse_step, dense = int(hf.get("decoder_sparse_step", 1)), sorted(hf.get("mlp_only_layers") or [])
        if sparse_step != 1:
            raise refuse_import(where, "decoder_sparse_step", sparse_step, "is not supported (1 only)")
        if dense != list(range(len(dense))):
            raise refuse_import(where, "mlp_only_layers", dense, "must be leading layers 0..k-1")
        if not hf.get("norm_topk_prob", False):
            raise refuse_import(where, "norm_topk_prob", hf.get("norm_topk_prob"), "is not supported (true only)")
        cfg.moe = MoEConfig(n_experts=n_experts(hf, where), top_k=int(hf["num_experts_per_tok"]),
                            expert_hidden=int(hf["moe_intermediate_size"]), first_dense_layers=len(dense),
                            router_score="softmax", balance="aux_loss")


QWEN3_MOE = register_family(Qwen3Moe("qwen3_moe", "Qwen3MoeForCausalLM", required={"qk_norm": True}, moe=True,
                                     order=120))
