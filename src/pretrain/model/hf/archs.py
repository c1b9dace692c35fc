"""The stock ``transformers`` architectures we read and write: the registry of :mod:`.families` (one
module per family) and the choice of one for export.

Every architecture is described by the ModelConfig features it fixes (``required``), the ones it can
carry with any value (``free``), how it spells sliding windows and attention biases, and its hooks
(:class:`.families.base.Arch`). Everything not listed must keep its default. That one table drives both
directions: export picks the first architecture that can express a config (or the one named by
``model.hf_architecture``) and refuses with the first feature that does not fit, naming the field and
its value; import fills the same fields from ``config.json``. A config no stock architecture fits is
exported as ``CUSTOM``: our own modeling code beside the weights (see :mod:`.custom`).
"""

from __future__ import annotations

from pretrain.model.config import ModelConfig
from pretrain.model.hf.families.base import (
    ACTIVATIONS_FROM_HF,
    FEATURES,
    HF_ACTIVATIONS,
    Arch,
    families,
    pattern_of,
)
from pretrain.model.hf.refuse import refuse_export

ARCHS = families()  # at import; the functions below ask the registry, so a family registered later counts too
DENSE = {name: a for name, a in ARCHS.items() if not a.moe}
MOE = {name: a for name, a in ARCHS.items() if a.moe}
# Our own modeling code (model/hf/remote/), loaded with trust_remote_code: expresses every config we train.
CUSTOM = Arch("pretrain", "PretrainForCausalLM", free=frozenset(FEATURES), windows="layers", attention_bias="qkv")
# Export's order of preference for dense models: the most widely served architecture that fits.
DENSE_ORDER = tuple(name for name, a in DENSE.items() if a.auto_export)


def check(cfg: ModelConfig, arch: Arch) -> None:
    """Raise a one-line ValueError naming the first field of ``cfg`` that ``arch`` cannot express."""
    if bool(cfg.moe.n_experts) != arch.moe:
        raise refuse_export("moe.n_experts", cfg.moe.n_experts, arch, "dense and MoE architectures differ")
    for name, default in FEATURES.items():
        value = getattr(cfg, name)
        if name in arch.required and value != arch.required[name]:
            raise refuse_export(name, value, arch, f"it always has {arch.required[name]!r}")
        if name not in arch.required and name not in arch.free and value != default:
            raise refuse_export(name, value, arch)
    if arch.attention_bias == "all" and cfg.qkv_bias != cfg.attn_out_bias:
        raise refuse_export("attn_out_bias", cfg.attn_out_bias, arch, "attention_bias sets q, k, v and o biases "
                            f"together, but qkv_bias = {cfg.qkv_bias}")
    if cfg.sliding_window:
        if arch.windows == "none":
            raise refuse_export("sliding_window", cfg.sliding_window, arch, "it has no sliding-window attention")
        if arch.windows == "all" and set(cfg.window_pattern) != {"S"}:
            raise refuse_export("window_pattern", cfg.window_pattern, arch, "its window applies to every layer")
    arch.check_extra(cfg)


def choose(cfg: ModelConfig) -> Arch:
    """The architecture ``cfg`` exports to: ``model.hf_architecture`` if set (refusing in one line what it
    cannot express), else the first stock one that fits, else CUSTOM (our own modeling code). Among MoE
    architectures only the one with this routing is tried: softmax routing with shared experts has none,
    and Mixtral (softmax, no QK-norm) has no leading dense layers."""
    if cfg.hf_architecture == CUSTOM.model_type:
        return CUSTOM
    registry = families()
    if cfg.hf_architecture:
        arch = registry.get(cfg.hf_architecture)
        if arch is None:
            raise ValueError(f"config field 'model.hf_architecture': {cfg.hf_architecture!r} is not one of "
                             f"{', '.join([*registry, CUSTOM.model_type])}")
        check(cfg, arch)
        return arch
    candidates = ([a for a in registry.values() if not a.moe and a.auto_export] if not cfg.moe.n_experts
                  else [a for a in registry.values() if a.moe and a.routes_like(cfg)])
    for arch in candidates:
        try:
            check(cfg, arch)
            return arch
        except ValueError:
            continue
    return CUSTOM


__all__ = ["ACTIVATIONS_FROM_HF", "ARCHS", "CUSTOM", "DENSE", "DENSE_ORDER", "FEATURES", "HF_ACTIVATIONS", "MOE",
           "Arch", "check", "choose", "pattern_of"]
