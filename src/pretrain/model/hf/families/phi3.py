"""Phi-3 (Phi3ForCausalLM): fused projections (q/k/v as qkv_proj, gate/up as gate_up_proj), one window.
Exported only when ``model.hf_architecture = "phi3"`` names it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pretrain.model.hf.families.base import Arch, register_family
from pretrain.model.hf.refuse import refuse_import


def fuse_phi3(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Phi-3 stores q, k, v as one qkv_proj (rows q, then k, then v) and gate, up as one gate_up_proj."""
    for key in [k for k in tensors if k.endswith("self_attn.q_proj.weight")]:
        p = key[: -len("q_proj.weight")]
        parts = [tensors.pop(f"{p}{n}_proj.weight") for n in "qkv"]
        tensors[f"{p}qkv_proj.weight"] = torch.cat(parts, dim=0)
    for key in [k for k in tensors if k.endswith("mlp.gate_proj.weight")]:
        p = key[: -len("gate_proj.weight")]
        tensors[f"{p}gate_up_proj.weight"] = torch.cat([tensors.pop(key), tensors.pop(f"{p}up_proj.weight")], dim=0)
    return tensors


def split_phi3(state: dict[str, torch.Tensor], cfg) -> dict[str, torch.Tensor]:
    q, kv = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    for key in [k for k in state if k.endswith("self_attn.qkv_proj.weight")]:
        p, w = key[: -len("qkv_proj.weight")], state.pop(key)
        for name, part in zip("qkv", torch.split(w, [q, kv, kv], dim=0), strict=True):
            state[f"{p}{name}_proj.weight"] = part.contiguous()
    for key in [k for k in state if k.endswith("mlp.gate_up_proj.weight")]:
        p, w = key[: -len("gate_up_proj.weight")], state.pop(key)
        gate, up = w.chunk(2, dim=0)
        state[f"{p}gate_proj.weight"], state[f"{p}up_proj.weight"] = gate.contiguous(), up.contiguous()
    return state


@dataclass(frozen=True)
class Phi3(Arch):
    def export_config(self, cfg) -> dict:
        return {"partial_rotary_factor": 1.0, "original_max_position_embeddings": cfg.max_seq_len}

    def import_config(self, cfg, hf: dict, where: str) -> None:
        prf = hf.get("partial_rotary_factor", 1.0)
        if float(prf) != 1.0:
            raise refuse_import(where, "partial_rotary_factor", prf, "is not supported (1.0 only)")

    def export_tensors(self, tensors, cfg, dtype):
        return fuse_phi3(tensors)

    def import_tensors(self, state, cfg):
        return split_phi3(state, cfg)


PHI3 = register_family(Phi3("phi3", "Phi3ForCausalLM", windows="all", order=80, auto_export=False))
