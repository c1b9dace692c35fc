"""The Hugging Face architecture registry: one module per family, each an :class:`Arch` with its hooks.

An architecture is described by the ModelConfig features it fixes (``required``), the ones it can carry
with any value (``free``), how it spells sliding windows and attention biases, and its hooks: the extra
``config.json`` keys it writes and reads, its weight-name and tensor-layout changes, and any extra
refusal. Everything not listed must keep its default. Every module of this package is imported when
the registry is first asked, so a new family is one file (see docs/model.md, "Adding an architecture")
and nothing outside it branches on its ``model_type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import torch

from pretrain.model.config import ModelConfig
from pretrain.registry import Registry

# Our architecture features and their defaults (the plain Llama recipe).
FEATURES: dict[str, object] = {
    "qk_norm": False, "qk_norm_scope": "head", "qkv_bias": False, "attn_out_bias": False, "mlp_bias": False,
    "activation": "silu", "norm_placement": "pre", "norm_unit_offset": False, "scale_embeddings": False,
    "attn_scale": 0.0, "attn_softcap": 0.0, "logit_softcap": 0.0, "rope_pattern": "R", "rope_theta_local": 0.0,
    # nanochat / modded-nanogpt levers no stock architecture has (zero_init_proj is only an init: exported).
    "mlp_gated": True, "value_embeddings": "", "smear_gate": False, "x0_mix": False,
}
HF_ACTIVATIONS = {"silu": "silu", "gelu_tanh": "gelu_pytorch_tanh"}
ACTIVATIONS_FROM_HF = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}
BIAS = frozenset({"qkv_bias", "attn_out_bias"})

FAMILIES: Registry[Arch] = Registry("Hugging Face architecture", "pretrain.model.hf.families")
A = TypeVar("A", bound="Arch")


def linear_names(ours: str, hf: str, bias: bool) -> dict[str, str]:
    names = {f"{ours}.weight": f"{hf}.weight"}
    if bias:
        names[f"{ours}.bias"] = f"{hf}.bias"
    return names


def mlp_names(cfg: ModelConfig, ours: str, hf: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for a in ("gate", "up", "down"):
        names |= linear_names(f"{ours}.{a}", f"{hf}.{a}_proj", cfg.mlp_bias)
    return names


def pattern_of(kinds: list[str]) -> str:
    """The shortest string that, cycled, spells ``kinds`` (one character per layer): "SSSL", "S", ..."""
    for period in range(1, len(kinds) + 1):
        if all(kinds[i] == kinds[i % period] for i in range(len(kinds))):
            return "".join(kinds[:period])
    return "".join(kinds)


@dataclass(frozen=True)
class Arch:
    model_type: str
    class_name: str
    required: dict = field(default_factory=dict)
    """Features this architecture always has (e.g. Qwen3's qk_norm)."""
    free: frozenset = frozenset()
    """Features it can carry with any value."""
    windows: str = "none"
    """Sliding windows: none, all (one ``sliding_window`` for every layer: Mistral, Phi-3) or layers
    (``layer_types`` per layer: Qwen2/3, Gemma 3, SmolLM3)."""
    attention_bias: str = "none"
    """none; all (``attention_bias`` puts biases on q, k, v and o together); qkv (always on q, k, v: Qwen2)."""
    moe: bool = False
    routing_bias: bool = False
    """An MoE architecture whose router has a learned score-correction bias (Glm4Moe)."""
    order: int = 100
    """Position in the registry: the order of error messages and of export's preference."""
    auto_export: bool = True
    """Export may pick it for a config that does not name one (Phi-3 only when named)."""
    wrapper_model_type: str = ""
    """The ``model_type`` of a multimodal checkpoint whose ``text_config`` is this architecture (Gemma 3 4B+)."""

    # ------------------------------------------------------------------ hooks (defaults: no change)
    def check_extra(self, cfg: ModelConfig) -> None:
        """Refuse (raise :func:`refuse_export`) what the feature table cannot say this one lacks."""

    def routes_like(self, cfg: ModelConfig) -> bool:
        """An MoE architecture: whether ``cfg``'s routing is this one's (export's choice among MoE ones)."""
        return False

    def export_config(self, cfg: ModelConfig) -> dict:
        """Keys added to (or replacing) the common ``config.json``."""
        return {}

    def import_config(self, cfg: ModelConfig, hf: dict, where: str) -> None:
        """Fill the fields of ``cfg`` this architecture's own keys hold (refusing what we cannot represent)."""

    def legacy_layer_types(self, hf: dict, n_layers: int) -> list[str] | None:
        """``layer_types`` of a config written before transformers spelled them out (None: Qwen2's rule)."""
        return None

    def rope_parameters(self, hf: dict) -> dict | None:
        """The full-attention layers' ``rope_parameters`` when they are kept per layer type (None: flat)."""
        return None

    def moe_layer_names(self, cfg: ModelConfig, i: int, legacy: bool) -> dict[str, str]:
        """Our key -> Hugging Face key for MoE layer ``i`` (router, experts, shared experts)."""
        ours, hf = f"layers.{i}.ffn", f"model.layers.{i}.mlp"
        names = {f"{ours}.router.weight": f"{hf}.gate.weight"}
        for e in range(cfg.moe.n_experts):
            names |= mlp_names(cfg, f"{ours}.experts.{e}", f"{hf}.experts.{e}")
        if cfg.moe.n_shared:
            names |= mlp_names(cfg, f"{ours}.shared", f"{hf}.shared_experts")
        return names

    def export_tensors(self, tensors: dict[str, torch.Tensor], cfg: ModelConfig,
                       dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The named tensors as this architecture's checkpoints lay them out (fused, filled in)."""
        return tensors

    def import_tensors(self, state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors back in the layout :meth:`moe_layer_names` and the common names use."""
        return state


def register_family(arch: A) -> A:
    """Register one architecture (an :class:`Arch`, or a subclass with its hooks) under its model_type."""
    return FAMILIES.add(arch.model_type, arch)


def families() -> dict[str, Arch]:
    """Every registered architecture by model_type, in registry order."""
    return {a.model_type: a for a in sorted(FAMILIES.all().values(), key=lambda a: (a.order, a.model_type))}


def unwrapping(model_type: str | None) -> Arch | None:
    """The architecture whose multimodal wrapper ``model_type`` is, if any."""
    return next((a for a in families().values() if model_type and a.wrapper_model_type == model_type), None)
