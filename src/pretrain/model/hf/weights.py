"""Tensor names and layouts: our state dict <-> a Hugging Face checkpoint of a registered architecture."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pretrain.model.config import ModelConfig
from pretrain.model.hf.families.base import Arch, linear_names, mlp_names

# Which of our block norms sits where, per norm placement, in Hugging Face's names.
_NORMS = {
    "pre": {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"},
    "post": {"attn_post_norm": "post_attention_layernorm", "ffn_post_norm": "post_feedforward_layernorm"},
    "sandwich": {"attn_norm": "input_layernorm", "attn_post_norm": "post_attention_layernorm",
                 "ffn_norm": "pre_feedforward_layernorm", "ffn_post_norm": "post_feedforward_layernorm"},
}


def _layer_names(cfg: ModelConfig, i: int) -> dict[str, str]:
    ours, hf = f"layers.{i}.", f"model.layers.{i}."
    names = {f"{k}.weight": f"{v}.weight" for k, v in _NORMS[cfg.norm_placement].items()}
    for a, b in (("wq", "q_proj"), ("wk", "k_proj"), ("wv", "v_proj")):
        names |= linear_names(f"attn.{a}", f"self_attn.{b}", cfg.qkv_bias)
    names |= linear_names("attn.wo", "self_attn.o_proj", cfg.attn_out_bias)
    if cfg.qk_norm:
        names |= {"attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight"}
    return {ours + k: hf + v for k, v in names.items()}


def name_map(cfg: ModelConfig, arch: Arch, legacy_mixtral: bool = True) -> dict[str, str]:
    """Our state-dict key -> the Hugging Face key, for every exported tensor (before a family's own layout,
    such as Phi-3's fusing). MoE layers are named by the family (:meth:`Arch.moe_layer_names`): Mixtral is
    written in its original hub layout (block_sparse_moe, w1/w2/w3) unless legacy_mixtral is False; the
    routing bias is included only where our forward uses it (balance = aux_free)."""
    names = {"tok_emb.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    if not cfg.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    for i in range(cfg.n_layers):
        names |= _layer_names(cfg, i)
        if cfg.is_moe_layer(i):
            names |= arch.moe_layer_names(cfg, i, legacy_mixtral)
        else:
            names |= mlp_names(cfg, f"layers.{i}.ffn", f"model.layers.{i}.mlp")
    return names


# ------------------------------------------------------------------------------------------ layouts
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
