"""``config.json`` <-> ModelConfig for every registered architecture.

RoPE scaling is written both as ``rope_scaling`` + ``rope_theta`` (transformers 4.x, vLLM, llama.cpp)
and as ``rope_parameters`` (transformers 5.x; per layer type for Gemma 3). Import refuses what our
model cannot represent with one line naming the ``config.json`` key and its value.
"""

from __future__ import annotations

from pretrain.model.config import ModelConfig, MoEConfig, RopeScalingConfig
from pretrain.model.hf.archs import ACTIVATIONS_FROM_HF, ARCHS, HF_ACTIVATIONS, Arch, pattern_of


def _refuse(where: str, key: str, value, why: str) -> ValueError:
    return ValueError(f"{where}: {key} = {value!r} {why}")


# ------------------------------------------------------------------------------------------ RoPE
def rope_dict(cfg: ModelConfig) -> dict | None:
    sc = cfg.rope_scaling
    if sc.type == "none":
        return None
    d: dict = {"rope_type": sc.type, "type": sc.type, "factor": sc.factor}
    if sc.type in ("yarn", "llama3", "linear"):
        d["original_max_position_embeddings"] = cfg.rope_original_max_position
    if sc.type == "yarn":
        d |= {"beta_fast": sc.beta_fast, "beta_slow": sc.beta_slow}
        if sc.attn_factor:
            d["attention_factor"] = sc.attn_factor
    if sc.type == "llama3":
        d |= {"low_freq_factor": sc.low_freq_factor, "high_freq_factor": sc.high_freq_factor}
    return d


def _rope_parameters(cfg: ModelConfig) -> dict:
    rope = rope_dict(cfg)
    if rope is None:
        return {"rope_type": "default", "rope_theta": cfg.rope_theta}
    return {k: v for k, v in rope.items() if k != "type"} | {"rope_theta": cfg.rope_theta}


def rope_from_hf(hf: dict, where: str, params: dict | None = None) -> tuple[float, RopeScalingConfig, int]:
    """(theta, scaling, original context) from ``rope_parameters`` (or legacy ``rope_scaling``)."""
    if params is None:
        params = hf.get("rope_parameters") or {}
        scaling = hf.get("rope_scaling") or {k: v for k, v in params.items() if k != "rope_theta"}
    else:
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    theta = float(params.get("rope_theta") or hf.get("rope_theta") or 10000.0)
    kind = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    if kind == "default":
        if float(scaling.get("partial_rotary_factor", 1.0) if scaling else 1.0) != 1.0:
            raise _refuse(where, "partial_rotary_factor", scaling["partial_rotary_factor"], "is not supported (1.0 only)")
        return theta, RopeScalingConfig(), 0
    if kind not in ("linear", "dynamic", "yarn", "llama3"):
        raise _refuse(where, "rope_type", kind, "is not supported (default, linear, dynamic, yarn, llama3)")
    rs = RopeScalingConfig(type=kind, factor=float(scaling["factor"]))
    orig = int(scaling.get("original_max_position_embeddings") or hf["max_position_embeddings"])
    if kind == "dynamic":
        orig = int(hf["max_position_embeddings"])
    rs.original_max_position = orig
    if kind == "yarn":
        rs.beta_fast = float(scaling.get("beta_fast") or 32.0)
        rs.beta_slow = float(scaling.get("beta_slow") or 1.0)
        rs.attn_factor = float(scaling.get("attention_factor") or 0.0)
        if scaling.get("mscale") or scaling.get("truncate") is False:
            raise _refuse(where, "rope_scaling.mscale", scaling.get("mscale"), "(YaRN mscale / truncate=false) "
                          "is not supported")
    if kind == "llama3":
        rs.low_freq_factor = float(scaling["low_freq_factor"])
        rs.high_freq_factor = float(scaling["high_freq_factor"])
    return theta, rs, orig


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
        "rope_parameters": _rope_parameters(cfg), "tie_word_embeddings": cfg.tie_embeddings,
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
    extra = _EXPORT_EXTRAS.get(arch.model_type)
    if extra is not None:
        out |= extra(cfg)
    return out


def _glm4_moe(cfg: ModelConfig) -> dict:
    m = cfg.moe
    # Glm4Moe sums n_shared_experts experts as one MLP of moe_intermediate_size * n_shared_experts.
    return {"moe_intermediate_size": cfg.expert_hidden_dim, "n_routed_experts": m.n_experts,
            "num_experts_per_tok": m.top_k, "n_shared_experts": m.n_shared, "first_k_dense_replace": m.first_dense_layers,
            "n_group": 1, "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 1.0,
            "use_qk_norm": cfg.qk_norm, "partial_rotary_factor": 1.0, "num_nextn_predict_layers": 0,
            "rope_parameters": _rope_parameters(cfg) | {"partial_rotary_factor": 1.0}}


def _qwen3_moe(cfg: ModelConfig) -> dict:
    m = cfg.moe
    return {"num_experts": m.n_experts, "num_experts_per_tok": m.top_k, "moe_intermediate_size": cfg.expert_hidden_dim,
            "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": list(range(m.first_dense_layers)),
            "use_sliding_window": False, "sliding_window": None, "output_router_logits": False}


def _mixtral(cfg: ModelConfig) -> dict:
    return {"num_local_experts": cfg.moe.n_experts, "num_experts_per_tok": cfg.moe.top_k,
            "intermediate_size": cfg.expert_hidden_dim, "router_jitter_noise": 0.0, "output_router_logits": False}


def _gemma3(cfg: ModelConfig) -> dict:
    local = ({"rope_type": "default", "rope_theta": cfg.rope_theta_local} if cfg.rope_theta_local
             else _rope_parameters(cfg))
    scalar = cfg.attn_scale ** -2 if cfg.attn_scale else cfg.head_dim
    scalar = round(scalar) if abs(scalar - round(scalar)) < 1e-6 else scalar  # transformers wants an int
    return {"hidden_activation": HF_ACTIVATIONS[cfg.activation], "query_pre_attn_scalar": scalar,
            "rope_local_base_freq": local["rope_theta"],
            "rope_parameters": {"full_attention": _rope_parameters(cfg), "sliding_attention": local},
            "final_logit_softcapping": cfg.logit_softcap or None, "attn_logit_softcapping": None,
            "sliding_window": cfg.sliding_window or cfg.max_seq_len, "use_bidirectional_attention": False}


def _smollm3(cfg: ModelConfig) -> dict:
    return {"no_rope_layers": [int(cfg.layer_rope(i) != "none") for i in range(cfg.n_layers)],
            "no_rope_layer_interval": len(cfg.rope_pattern)}


_EXPORT_EXTRAS = {"glm4_moe": _glm4_moe, "qwen3_moe": _qwen3_moe, "mixtral": _mixtral, "gemma3_text": _gemma3,
                  "smollm3": _smollm3, "llama": lambda cfg: {"pretraining_tp": 1},
                  "phi3": lambda cfg: {"partial_rotary_factor": 1.0, "original_max_position_embeddings": cfg.max_seq_len}}


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
        if types is None and arch.model_type == "gemma3_text":  # transformers 4 configs: every n-th layer full
            every = int(hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6)
            types = ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n_layers)]
        if types is None:  # older configs: windows from layer max_window_layers on (Qwen2's rule)
            on = bool(hf.get("use_sliding_window")) and window
            start = int(hf.get("max_window_layers", n_layers))
            types = ["sliding_attention" if on and i >= start else "full_attention" for i in range(n_layers)]
        unknown = set(types) - {"sliding_attention", "full_attention"}
        if unknown:
            raise _refuse(where, "layer_types", sorted(unknown), "are not supported")
        if "sliding_attention" not in types:
            return 0, "L"
        if not window:
            raise _refuse(where, "sliding_window", window, "must be set when layer_types has sliding_attention")
        return int(window), pattern_of(["S" if t == "sliding_attention" else "L" for t in types])
    return 0, "L"


def config_from_hf(hf: dict, where: str = "config.json") -> ModelConfig:
    """Our ModelConfig for a ``config.json`` of a registered architecture."""
    mt = hf.get("model_type")
    arch = ARCHS.get(mt)
    if arch is None:
        raise _refuse(where, "model_type", mt, f"is not supported (supported: {', '.join(ARCHS)})")
    act_key = "hidden_activation" if hf.get("hidden_activation") else "hidden_act"
    act = hf.get(act_key) or "silu"
    if act not in ACTIVATIONS_FROM_HF:
        raise _refuse(where, act_key, act, "is not supported (silu, gelu_pytorch_tanh)")
    dim, heads, n_layers = int(hf["hidden_size"]), int(hf["num_attention_heads"]), int(hf["num_hidden_layers"])
    head_dim = int(hf.get("head_dim") or dim // heads)
    attention_bias, mlp_bias = bool(hf.get("attention_bias")), bool(hf.get("mlp_bias"))
    for key, on, ok in (("attention_bias", attention_bias, arch.attention_bias == "all"),
                        ("mlp_bias", mlp_bias, "mlp_bias" in arch.free)):
        if on and not ok:
            raise _refuse(where, key, True, f"is not supported for {mt}")
    window, pattern = _windows(hf, arch, n_layers, where)
    params = hf.get("rope_parameters") or {}
    per_type = mt == "gemma3_text" and "full_attention" in params
    theta, scaling, orig = rope_from_hf(hf, where, params["full_attention"] if per_type else None)
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
    extra = _IMPORT_EXTRAS.get(mt)
    if extra is not None:
        extra(cfg, hf, where)
    if scaling.type == "dynamic":
        cfg.max_seq_len = orig
    return cfg


def _glm4_moe_in(cfg: ModelConfig, hf: dict, where: str) -> None:
    prf = hf.get("partial_rotary_factor", (hf.get("rope_parameters") or {}).get("partial_rotary_factor", 0.5))
    if float(prf) != 1.0:
        raise _refuse(where, "partial_rotary_factor", prf, "is not supported (1.0 only)")
    for key, ok in (("n_group", 1), ("routed_scaling_factor", 1.0)):
        if float(hf.get(key, ok)) != ok:
            raise _refuse(where, key, hf[key], f"is not supported ({ok} only)")
    cfg.moe = MoEConfig(n_experts=int(hf["n_routed_experts"]), top_k=int(hf["num_experts_per_tok"]),
                        n_shared=int(hf.get("n_shared_experts", 0)), expert_hidden=int(hf["moe_intermediate_size"]),
                        first_dense_layers=int(hf.get("first_k_dense_replace", 0)), router_score="sigmoid")


def _experts(hf: dict, where: str) -> int:
    # Older Qwen3-MoE configs say num_experts; transformers 5 writes num_local_experts.
    for key in ("num_experts", "num_local_experts"):
        if hf.get(key):
            return int(hf[key])
    raise _refuse(where, "num_experts", None, "(or num_local_experts) must be set for an MoE model")


def _qwen3_moe_in(cfg: ModelConfig, hf: dict, where: str) -> None:
    sparse_step, dense = int(hf.get("decoder_sparse_step", 1)), sorted(hf.get("mlp_only_layers") or [])
    if sparse_step != 1:
        raise _refuse(where, "decoder_sparse_step", sparse_step, "is not supported (1 only)")
    if dense != list(range(len(dense))):
        raise _refuse(where, "mlp_only_layers", dense, "must be leading layers 0..k-1")
    if not hf.get("norm_topk_prob", False):
        raise _refuse(where, "norm_topk_prob", hf.get("norm_topk_prob"), "is not supported (true only)")
    cfg.moe = MoEConfig(n_experts=_experts(hf, where), top_k=int(hf["num_experts_per_tok"]),
                        expert_hidden=int(hf["moe_intermediate_size"]), first_dense_layers=len(dense),
                        router_score="softmax", balance="aux_loss")


def _mixtral_in(cfg: ModelConfig, hf: dict, where: str) -> None:
    cfg.moe = MoEConfig(n_experts=_experts(hf, where), top_k=int(hf["num_experts_per_tok"]),
                        expert_hidden=int(hf["intermediate_size"]), router_score="softmax", balance="aux_loss")


def _gemma3_in(cfg: ModelConfig, hf: dict, where: str) -> None:
    if hf.get("use_bidirectional_attention"):
        raise _refuse(where, "use_bidirectional_attention", True, "is not supported (causal only)")
    params = hf.get("rope_parameters") or {}
    if "sliding_attention" in params:
        local_theta, local, _ = rope_from_hf(hf, where, params["sliding_attention"])
        if local.type != "none":
            raise _refuse(where, "rope_parameters.sliding_attention.rope_type", local.type, "is not supported")
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


def _smollm3_in(cfg: ModelConfig, hf: dict, where: str) -> None:
    flags = hf.get("no_rope_layers")
    if flags is None:
        interval = int(hf.get("no_rope_layer_interval", 4))
        flags = [int((i + 1) % interval != 0) for i in range(cfg.n_layers)]
    cfg.rope_pattern = pattern_of(["R" if f else "N" for f in flags])


def _phi3_in(cfg: ModelConfig, hf: dict, where: str) -> None:
    prf = hf.get("partial_rotary_factor", 1.0)
    if float(prf) != 1.0:
        raise _refuse(where, "partial_rotary_factor", prf, "is not supported (1.0 only)")


_IMPORT_EXTRAS = {"glm4_moe": _glm4_moe_in, "qwen3_moe": _qwen3_moe_in, "mixtral": _mixtral_in,
                  "gemma3_text": _gemma3_in, "smollm3": _smollm3_in, "phi3": _phi3_in}
