"""Tensor names and layouts: our state dict <-> a Hugging Face checkpoint of a registered architecture."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pretrain.model.config import ModelConfig
from pretrain.model.hf.archs import Arch

# Which of our block norms sits where, per norm placement, in Hugging Face's names.
_NORMS = {
    "pre": {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"},
    "post": {"attn_post_norm": "post_attention_layernorm", "ffn_post_norm": "post_feedforward_layernorm"},
    "sandwich": {"attn_norm": "input_layernorm", "attn_post_norm": "post_attention_layernorm",
                 "ffn_norm": "pre_feedforward_layernorm", "ffn_post_norm": "post_feedforward_layernorm"},
}


def _linear(ours: str, hf: str, bias: bool) -> dict[str, str]:
    names = {f"{ours}.weight": f"{hf}.weight"}
    if bias:
        names[f"{ours}.bias"] = f"{hf}.bias"
    return names


def _mlp_names(cfg: ModelConfig, ours: str, hf: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for a in ("gate", "up", "down"):
        names |= _linear(f"{ours}.{a}", f"{hf}.{a}_proj", cfg.mlp_bias)
    return names


def _layer_names(cfg: ModelConfig, i: int) -> dict[str, str]:
    ours, hf = f"layers.{i}.", f"model.layers.{i}."
    names = {f"{k}.weight": f"{v}.weight" for k, v in _NORMS[cfg.norm_placement].items()}
    for a, b in (("wq", "q_proj"), ("wk", "k_proj"), ("wv", "v_proj")):
        names |= _linear(f"attn.{a}", f"self_attn.{b}", cfg.qkv_bias)
    names |= _linear("attn.wo", "self_attn.o_proj", cfg.attn_out_bias)
    if cfg.qk_norm:
        names |= {"attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight"}
    return {ours + k: hf + v for k, v in names.items()}


def name_map(cfg: ModelConfig, arch: Arch, legacy_mixtral: bool = True) -> dict[str, str]:
    """Our state-dict key -> the Hugging Face key, for every exported tensor (before Phi-3's fusing).
    Mixtral is written in its original hub layout (block_sparse_moe, w1/w2/w3) unless legacy_mixtral is
    False. The routing bias is included only where our forward uses it (balance = aux_free)."""
    names = {"tok_emb.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    if not cfg.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    for i in range(cfg.n_layers):
        names |= _layer_names(cfg, i)
        ours, hf = f"layers.{i}.ffn", f"model.layers.{i}.mlp"
        if not cfg.is_moe_layer(i):
            names |= _mlp_names(cfg, ours, hf)
            continue
        if arch.model_type == "mixtral" and legacy_mixtral:
            hf = f"model.layers.{i}.block_sparse_moe"
            names[f"{ours}.router.weight"] = f"{hf}.gate.weight"
            for e in range(cfg.moe.n_experts):
                for a, b in (("gate", "w1"), ("down", "w2"), ("up", "w3")):
                    names[f"{ours}.experts.{e}.{a}.weight"] = f"{hf}.experts.{e}.{b}.weight"
            continue
        names[f"{ours}.router.weight"] = f"{hf}.gate.weight"
        if arch.model_type == "glm4_moe" and cfg.moe.balance == "aux_free":
            names[f"{ours}.router_bias"] = f"{hf}.gate.e_score_correction_bias"
        for e in range(cfg.moe.n_experts):
            names |= _mlp_names(cfg, f"{ours}.experts.{e}", f"{hf}.experts.{e}")
        if cfg.moe.n_shared:
            names |= _mlp_names(cfg, f"{ours}.shared", f"{hf}.shared_experts")
    return names


# ------------------------------------------------------------------------------------------ layouts
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


def split_phi3(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
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


def language_model_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A multimodal checkpoint's decoder (Gemma 3 4B+: language_model.model.*) under the text model's
    names; the vision tower and the projector are left out."""
    out = {}
    for key, tensor in state.items():
        for old, new in (("language_model.model.", "model."), ("model.language_model.", "model."),
                         ("language_model.lm_head.", "lm_head.")):
            if key.startswith(old):
                out[new + key[len(old):]] = tensor
                break
        else:
            if key.startswith("lm_head."):
                out[key] = tensor
    return out


def unfuse_experts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring MoE expert tensors to one layout (mlp.experts.{e}.{gate,up,down}_proj): transformers 5 saves
    them fused ([E, 2I, D] gate_up_proj, [E, D, I] down_proj); Mixtral's hub files say block_sparse_moe and
    w1 (gate) / w2 (down) / w3 (up)."""
    for key in [k for k in state if ".block_sparse_moe." in k]:
        new = key.replace(".block_sparse_moe.", ".mlp.")
        for old, repl in ((".w1.", ".gate_proj."), (".w2.", ".down_proj."), (".w3.", ".up_proj.")):
            new = new.replace(old, repl)
        state[new] = state.pop(key)
    for key in [k for k in state if k.endswith("mlp.experts.gate_up_proj")]:
        prefix = key[: -len("gate_up_proj")]
        gate_up, down = state.pop(key), state.pop(prefix + "down_proj")
        hidden = gate_up.shape[1] // 2
        for e in range(gate_up.shape[0]):
            state[f"{prefix}{e}.gate_proj.weight"] = gate_up[e, :hidden].contiguous()
            state[f"{prefix}{e}.up_proj.weight"] = gate_up[e, hidden:].contiguous()
            state[f"{prefix}{e}.down_proj.weight"] = down[e].contiguous()
    return state


def read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory: the files ``model.safetensors.index.json`` lists when there
    is one (Mistral's repositories also ship a ``consolidated.safetensors`` in another layout beside it),
    else every ``*.safetensors``. Pickled ``*.bin`` files are refused, never unpickled."""
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index}: not a safetensors index with a weight_map ({err})") from None
        files = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{index}: lists {missing[0]}, which is not in {directory}")
    else:
        files = sorted(directory.glob("*.safetensors"))
    if not files:
        if any(directory.glob("*.bin")):
            raise ValueError(f"{directory}: only *.bin weights found; pickled checkpoints are refused, convert "
                             "them to safetensors first")
        raise FileNotFoundError(f"no *.safetensors weights in {directory}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as err:  # SafetensorError and OSError: name the file, no traceback
            raise ValueError(f"{f}: not a readable safetensors file ({err})") from None
    return state
