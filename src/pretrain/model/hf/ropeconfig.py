"""RoPE in ``config.json``: written both as ``rope_scaling`` + ``rope_theta`` (transformers 4.x, vLLM,
llama.cpp) and as ``rope_parameters`` (transformers 5.x); read from either."""

from __future__ import annotations

from pretrain.model.config import ModelConfig, RopeScalingConfig
from pretrain.model.hf.refuse import refuse_import


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


def rope_parameters(cfg: ModelConfig) -> dict:
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
            raise refuse_import(where, "partial_rotary_factor", scaling["partial_rotary_factor"], "is not supported (1.0 only)")
        return theta, RopeScalingConfig(), 0
    if kind not in ("linear", "dynamic", "yarn", "llama3"):
        raise refuse_import(where, "rope_type", kind, "is not supported (default, linear, dynamic, yarn, llama3)")
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
            raise refuse_import(where, "rope_scaling.mscale", scaling.get("mscale"), "(YaRN mscale / truncate=false) "
                          "is not supported")
    if kind == "llama3":
        rs.low_freq_factor = float(scaling["low_freq_factor"])
        rs.high_freq_factor = float(scaling["high_freq_factor"])
    return theta, rs, orig
