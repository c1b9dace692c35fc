"""``config.json`` <-> ModelConfig for every registered architecture: the keys they share here, each
family's own keys in its module (:mod:`.families`), RoPE in :mod:`.ropeconfig`. Import refuses what our
model cannot represent with one line naming the ``config.json`` key and its value.
"""

from __future__ import annotations

from pretrain.model.config import ModelConfig
from pretrain.model.hf.archs import ACTIVATIONS_FROM_HF, HF_ACTIVATIONS, Arch, pattern_of
from pretrain.model.hf.families.base import families
from pretrain.model.hf.refuse import refuse_import
from pretrain.model.hf.ropeconfig import rope_dict, rope_from_hf, rope_parameters


# ------------------------------------------------------------------------------------------ export
def _layer_types(cfg: ModelConfig) -> list[str]:
    return ["sliding_attention" if cfg.layer_window(i) else "full_attention" for i in range(cfg.n_layers)]


def hf_config(cfg: ModelConfig, arch: Arch, token_ids: dict[str, int | None], dtype: str = "float32") -> dict:
    """The ``config.json`` of ``arch`` for ``cfg`` (which :func:`archs.check` has accepted)."""
    rope = rope_dict(cfg)
    # transformers' dynamic NTK treats max_position_embeddings as the original context.
    max_pos = cfg.rope_original_max_position if cfg.rope_scaling.type == "dynamic" else cfg.max_seq_len
    out = {
        "architectures": [arch.class_name], "model_type": arch.model_type,
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.dim, "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim, "hidden_act": HF_ACTIVATIONS[cfg.activation], "max_position_embeddings": max_pos,
        "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta, "rope_scaling": rope,
        "rope_parameters": rope_parameters(cfg), "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": cfg.qkv_bias, "mlp_bias": cfg.mlp_bias, "attention_dropout": 0.0,
        "initializer_range": cfg.init_std, "use_cache": True, "torch_dtype": dtype, "dtype": dtype,
        "bos_token_id": token_ids.get("bos_token"), "eos_token_id": token_ids.get("eos_token"),
        "pad_token_id": token_ids.get("pad_token"),
    }
    window = cfg.sliding_window or None
    if arch.windows == "all":
        out["sliding_window"] = window
    elif arch.windows == "layers":
        out |= {"use_sliding_window": bool(window), "sliding_window": window, "layer_types": _layer_types(cfg),
                "max_window_layers": cfg.n_layers}
    return out | arch.export_config(cfg)


# ------------------------------------------------------------------------------------------ import
def _windows(hf: dict, arch: Arch, n_layers: int, where: str) -> tuple[int, str]:
    if arch.windows == "all":
        window = hf.get("sliding_window")
        if window and hf.get("use_sliding_window", True):
            return int(window), "S"
        return 0, "L"
    if arch.windows == "layers":
        types = hf.get("layer_types")
        window = hf.get("sliding_window")
        if types is None:
            types = arch.legacy_layer_types(hf, n_layers)
        if types is None:  # older configs: windows from layer max_window_layers on (Qwen2's rule)
            on = bool(hf.get("use_sliding_window")) and window
            start = int(hf.get("max_window_layers", n_layers))
            types = ["sliding_attention" if on and i >= start else "full_attention" for i in range(n_layers)]
        unknown = set(types) - {"sliding_attention", "full_attention"}
        if unknown:
            raise refuse_import(where, "layer_types", sorted(unknown), "are not supported")
        if "sliding_attention" not in types:
            return 0, "L"
        if not window:
            raise refuse_import(where, "sliding_window", window, "must be set when layer_types has sliding_attention")
        return int(window), pattern_of(["S" if t == "sliding_attention" else "L" for t in types])
    return 0, "L"


def config_from_hf(hf: dict, where: str = "config.json") -> ModelConfig:
    """Our ModelConfig for a ``config.json`` of a registered architecture."""
    mt = hf.get("model_type")
    registry = families()
    arch = registry.get(mt)
    if arch is None:
        raise refuse_import(where, "model_type", mt, f"is not supported (supported: {', '.join(registry)})")
    act_key = "hidden_activation" if hf.get("hidden_activation") else "hidden_act"
    act = hf.get(act_key) or "silu"
    if act not in ACTIVATIONS_FROM_HF:
        raise refuse_import(where, act_key, act, "is not supported (silu, gelu_pytorch_tanh)")
    dim, heads, n_layers = int(hf["hidden_size"]), int(hf["num_attention_heads"]), int(hf["num_hidden_layers"])
    head_dim = int(hf.get("head_dim") or dim // heads)
    attention_bias, mlp_bias = bool(hf.get("attention_bias")), bool(hf.get("mlp_bias"))
    for key, on, ok in (("attention_bias", attention_bias, arch.attention_bias == "all"),
                        ("mlp_bias", mlp_bias, "mlp_bias" in arch.free)):
        if on and not ok:
            raise refuse_import(where, key, True, f"is not supported for {mt}")
    window, pattern = _windows(hf, arch, n_layers, where)
    theta, scaling, orig = rope_from_hf(hf, where, arch.rope_parameters(hf))
    cfg = ModelConfig(
        vocab_size=int(hf["vocab_size"]), dim=dim, n_layers=n_layers, n_heads=heads,
        n_kv_heads=int(hf.get("num_key_value_heads") or heads), ffn_hidden=int(hf["intermediate_size"]),
        attn_head_dim=0 if dim % heads == 0 and head_dim == dim // heads else head_dim,
        max_seq_len=int(hf.get("max_position_embeddings", 2048)), rope_theta=theta, rope_scaling=scaling,
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qk_norm=bool(hf.get("use_qk_norm", False)), init_std=float(hf.get("initializer_range", 0.02)),
        activation=ACTIVATIONS_FROM_HF[act], qkv_bias=attention_bias or arch.attention_bias == "qkv",
        attn_out_bias=attention_bias, mlp_bias=mlp_bias, sliding_window=window, window_pattern=pattern,
        hf_architecture=mt,
    )
    for name, value in arch.required.items():
        setattr(cfg, name, value)
    arch.import_config(cfg, hf, where)
    if scaling.type == "dynamic":
        cfg.max_seq_len = orig
    return cfg
