"""Export with our own modeling code: the fallback for models no stock architecture expresses.

The folder gets ``configuration_pretrain.py`` and ``modeling_pretrain.py`` (copied from ``remote/``; they
import only torch and transformers), a ``config.json`` whose ``auto_map`` names them, and the weights
under our own state-dict names prefixed with ``model.`` (the LM head as ``lm_head.weight`` when untied),
so ``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`` loads it and import reads the
tensors back unchanged. The MTP modules are left out (a training aid, as for the stock architectures).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from pretrain.model.config import ModelConfig, MoEConfig, RopeScalingConfig
from pretrain.model.hf.archs import CUSTOM

REMOTE = Path(__file__).parent / "remote"
CODE_FILES = ("configuration_pretrain.py", "modeling_pretrain.py")
AUTO_MAP = {"AutoConfig": "configuration_pretrain.PretrainConfig",
            "AutoModel": "modeling_pretrain.PretrainModel",
            "AutoModelForCausalLM": "modeling_pretrain.PretrainForCausalLM"}
ACTIVATIONS = {"silu": "silu", "gelu_tanh": "gelu_pytorch_tanh", "relu2": "relu2"}
# config.json keys that carry a ModelConfig field under its own name.
SAME_NAME = ("rope_pattern", "rope_theta_local", "mlp_gated", "mlp_bias", "qk_norm", "qk_norm_scope", "qkv_bias",
             "attn_out_bias", "attn_scale", "attn_softcap", "logit_softcap", "window_pattern", "value_embeddings",
             "smear_gate", "x0_mix", "norm_placement", "norm_unit_offset", "scale_embeddings", "rope_theta")
# transformers' names for the shape fields.
RENAMED = {"vocab_size": "vocab_size", "dim": "hidden_size", "n_layers": "num_hidden_layers",
           "n_heads": "num_attention_heads", "max_seq_len": "max_position_embeddings", "norm_eps": "rms_norm_eps",
           "sliding_window": "window_size", "init_std": "initializer_range", "tie_embeddings": "tie_word_embeddings"}


def custom_config(cfg: ModelConfig, token_ids: dict[str, int | None], dtype: str) -> dict:
    """config.json for the exported code (see remote/configuration_pretrain.py for every key)."""
    out = {"architectures": [CUSTOM.class_name], "model_type": CUSTOM.model_type, "auto_map": AUTO_MAP}
    out |= {hf: getattr(cfg, ours) for ours, hf in RENAMED.items()}
    out |= {name: getattr(cfg, name) for name in SAME_NAME}
    out |= {"num_key_value_heads": cfg.kv_heads, "head_dim": cfg.head_dim, "intermediate_size": cfg.hidden_dim,
            "hidden_act": ACTIVATIONS[cfg.activation], "rope_extension": _rope_extension(cfg), "moe": _moe(cfg),
            "use_cache": True, "torch_dtype": dtype, "dtype": dtype,
            "bos_token_id": token_ids.get("bos_token"), "eos_token_id": token_ids.get("eos_token"),
            "pad_token_id": token_ids.get("pad_token")}
    return out


def _rope_extension(cfg: ModelConfig) -> dict | None:
    sc = cfg.rope_scaling
    if sc.type == "none":
        return None
    return {"type": sc.type, "factor": sc.factor, "original_max_position": cfg.rope_original_max_position,
            "beta_fast": sc.beta_fast, "beta_slow": sc.beta_slow, "attn_factor": sc.attn_factor,
            "low_freq_factor": sc.low_freq_factor, "high_freq_factor": sc.high_freq_factor}


def _moe(cfg: ModelConfig) -> dict | None:
    m = cfg.moe
    if not m.n_experts:
        return None
    return {"n_experts": m.n_experts, "top_k": m.top_k, "n_shared": m.n_shared,
            "expert_intermediate_size": cfg.expert_hidden_dim, "router_score": m.router_score,
            "routing_bias": m.balance == "aux_free", "first_dense_layers": m.first_dense_layers}


def config_from_custom(hf: dict, where: str = "config.json") -> ModelConfig:
    """Our ModelConfig for a config.json written by :func:`custom_config` (KeyError names a missing key)."""
    fields = {ours: hf[key] for ours, key in RENAMED.items()} | {name: hf[name] for name in SAME_NAME}
    act = {v: k for k, v in ACTIVATIONS.items()}
    if hf["hidden_act"] not in act:
        raise ValueError(f"{where}: hidden_act = {hf['hidden_act']!r} is not one of {', '.join(act)}")
    dim, heads, head_dim = int(hf["hidden_size"]), int(hf["num_attention_heads"]), int(hf["head_dim"])
    cfg = ModelConfig(**fields, n_kv_heads=int(hf["num_key_value_heads"]), ffn_hidden=int(hf["intermediate_size"]),
                      attn_head_dim=0 if dim % heads == 0 and head_dim == dim // heads else head_dim,
                      activation=act[hf["hidden_act"]], hf_architecture=CUSTOM.model_type)
    ext = hf.get("rope_extension")
    if ext:
        cfg.rope_scaling = RopeScalingConfig(type=ext["type"], factor=float(ext["factor"]),
                                             original_max_position=int(ext["original_max_position"]),
                                             beta_fast=float(ext["beta_fast"]), beta_slow=float(ext["beta_slow"]),
                                             attn_factor=float(ext["attn_factor"]),
                                             low_freq_factor=float(ext["low_freq_factor"]),
                                             high_freq_factor=float(ext["high_freq_factor"]))
    moe = hf.get("moe")
    if moe:
        cfg.moe = MoEConfig(n_experts=int(moe["n_experts"]), top_k=int(moe["top_k"]), n_shared=int(moe["n_shared"]),
                            expert_hidden=int(moe["expert_intermediate_size"]), router_score=moe["router_score"],
                            balance="aux_free" if moe["routing_bias"] else "aux_loss",
                            first_dense_layers=int(moe["first_dense_layers"]))
    return cfg


def hf_name(ours: str) -> str:
    return ours if ours == "lm_head.weight" else "model." + ours


def export_tensors(state: dict[str, torch.Tensor], cfg: ModelConfig, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Our state dict under the exported names: MTP modules dropped, a tied head stored once; the routing
    bias stays float32, as our model keeps it."""
    out = {}
    for key, tensor in state.items():
        if key.startswith("mtp.") or (cfg.tie_embeddings and key == "lm_head.weight"):
            continue
        target = torch.float32 if key.endswith("router_bias") else dtype
        out[hf_name(key)] = tensor.detach().to(target).contiguous().cpu()
    return out


def import_tensors(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], cfg: ModelConfig,
                   directory: Path) -> dict[str, torch.Tensor]:
    """Our state dict from the exported tensors, refusing a missing, misshapen or unknown one."""
    loaded = {}
    for key, want in expected.items():
        if cfg.tie_embeddings and key == "lm_head.weight":
            continue
        name = hf_name(key)
        if name not in state:
            raise ValueError(f"{directory}: tensor {name} missing from the safetensors files")
        t = state.pop(name)
        if t.shape != want.shape:
            raise ValueError(f"{directory}: {name} has shape {tuple(t.shape)}, expected {tuple(want.shape)}")
        loaded[key] = t.to(want.dtype)
    if state:
        raise ValueError(f"{directory}: tensors this model does not use: {sorted(state)[:5]}")
    if cfg.tie_embeddings:
        loaded["lm_head.weight"] = loaded["tok_emb.weight"]
    return loaded


def write_code(out: Path) -> None:
    """Copy the modeling code next to the weights (AutoModel resolves auto_map against these files)."""
    for name in CODE_FILES:
        shutil.copyfile(REMOTE / name, out / name)
