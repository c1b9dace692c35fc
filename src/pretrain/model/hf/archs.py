"""The stock ``transformers`` architectures we read and write, as a registry of what each can express.

Every architecture is described by the ModelConfig features it fixes (``required``), the ones it can
carry with any value (``free``), how it spells sliding windows and attention biases, and whether its
checkpoints fuse projections. Everything not listed must keep its default. That one table drives both
directions: export picks the first architecture that can express a config (or the one named by
``model.hf_architecture``) and refuses with the first feature that does not fit, naming the field and
its value; import fills the same fields from ``config.json``. A config no stock architecture fits is
exported as ``CUSTOM``: our own modeling code beside the weights (see :mod:`.custom`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.model.config import ModelConfig

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
_BIAS = frozenset({"qkv_bias", "attn_out_bias"})


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
    fused: bool = False
    """Checkpoints fuse q/k/v into qkv_proj and gate/up into gate_up_proj (Phi-3)."""
    moe: bool = False


DENSE = {a.model_type: a for a in [
    Arch("llama", "LlamaForCausalLM", free=_BIAS | {"mlp_bias"}, attention_bias="all"),
    Arch("qwen3", "Qwen3ForCausalLM", required={"qk_norm": True}, free=_BIAS, windows="layers", attention_bias="all"),
    Arch("qwen2", "Qwen2ForCausalLM", required={"qkv_bias": True}, windows="layers", attention_bias="qkv"),
    Arch("mistral", "MistralForCausalLM", windows="all"),
    Arch("olmo2", "Olmo2ForCausalLM", required={"qk_norm": True, "qk_norm_scope": "all", "norm_placement": "post"},
         free=_BIAS, attention_bias="all"),
    Arch("gemma3_text", "Gemma3ForCausalLM",
         required={"qk_norm": True, "norm_placement": "sandwich", "norm_unit_offset": True, "scale_embeddings": True,
                   "activation": "gelu_tanh"},
         free=_BIAS | {"attn_scale", "logit_softcap", "rope_theta_local"}, windows="layers",
         attention_bias="all"),
    Arch("smollm3", "SmolLM3ForCausalLM", free=_BIAS | {"mlp_bias", "rope_pattern"}, windows="layers",
         attention_bias="all"),
    Arch("phi3", "Phi3ForCausalLM", windows="all", fused=True),
]}
MOE = {a.model_type: a for a in [
    Arch("glm4_moe", "Glm4MoeForCausalLM", free=frozenset({"qk_norm"}), moe=True),
    Arch("qwen3_moe", "Qwen3MoeForCausalLM", required={"qk_norm": True}, moe=True),
    Arch("mixtral", "MixtralForCausalLM", windows="all", moe=True),
]}
ARCHS = DENSE | MOE
# Our own modeling code (model/hf/remote/), loaded with trust_remote_code: expresses every config we train.
CUSTOM = Arch("pretrain", "PretrainForCausalLM", free=frozenset(FEATURES), windows="layers", attention_bias="qkv")
# Export's order of preference for dense models: the most widely served architecture that fits.
DENSE_ORDER = ("llama", "qwen3", "qwen2", "mistral", "olmo2", "gemma3_text", "smollm3")


def _refuse(field_name: str, value, arch: Arch, why: str = "") -> ValueError:
    return ValueError(f"config field 'model.{field_name}': {value!r} cannot be exported as {arch.model_type} "
                      f"({arch.class_name}){': ' + why if why else ''}")


def check(cfg: ModelConfig, arch: Arch) -> None:
    """Raise a one-line ValueError naming the first field of ``cfg`` that ``arch`` cannot express."""
    if bool(cfg.moe.n_experts) != arch.moe:
        raise _refuse("moe.n_experts", cfg.moe.n_experts, arch, "dense and MoE architectures differ")
    for name, default in FEATURES.items():
        value = getattr(cfg, name)
        if name in arch.required and value != arch.required[name]:
            raise _refuse(name, value, arch, f"it always has {arch.required[name]!r}")
        if name not in arch.required and name not in arch.free and value != default:
            raise _refuse(name, value, arch)
    if arch.attention_bias == "all" and cfg.qkv_bias != cfg.attn_out_bias:
        raise _refuse("attn_out_bias", cfg.attn_out_bias, arch, "attention_bias sets q, k, v and o biases together, "
                      f"but qkv_bias = {cfg.qkv_bias}")
    if cfg.sliding_window:
        if arch.windows == "none":
            raise _refuse("sliding_window", cfg.sliding_window, arch, "it has no sliding-window attention")
        if arch.windows == "all" and set(cfg.window_pattern) != {"S"}:
            raise _refuse("window_pattern", cfg.window_pattern, arch, "its window applies to every layer")
    if arch.model_type == "gemma3_text" and cfg.rope_scaling.type != "none" and cfg.sliding_window \
            and not cfg.rope_theta_local:
        raise _refuse("rope_theta_local", 0.0, arch, "its windowed layers never use rope_scaling; set their base")


def choose(cfg: ModelConfig) -> Arch:
    """The architecture ``cfg`` exports to: ``model.hf_architecture`` if set (refusing in one line what it
    cannot express), else the first stock one that fits, else CUSTOM (our own modeling code)."""
    if cfg.hf_architecture == CUSTOM.model_type:
        return CUSTOM
    if cfg.hf_architecture:
        arch = ARCHS.get(cfg.hf_architecture)
        if arch is None:
            raise ValueError(f"config field 'model.hf_architecture': {cfg.hf_architecture!r} is not one of "
                             f"{', '.join([*ARCHS, CUSTOM.model_type])}")
        check(cfg, arch)
        return arch
    candidates = [DENSE[name] for name in DENSE_ORDER] if not cfg.moe.n_experts else [_moe_candidate(cfg)]
    for arch in filter(None, candidates):
        try:
            check(cfg, arch)
            return arch
        except ValueError:
            continue
    return CUSTOM


def _moe_candidate(cfg: ModelConfig) -> Arch | None:
    """The stock MoE architecture with this routing, or None: softmax routing with shared experts has none,
    and Mixtral (softmax, no QK-norm) has no leading dense layers."""
    m = cfg.moe
    if m.router_score == "sigmoid":
        return MOE["glm4_moe"]
    if m.n_shared:
        return None
    if cfg.qk_norm:
        return MOE["qwen3_moe"]
    return None if m.first_dense_layers else MOE["mixtral"]


def pattern_of(kinds: list[str]) -> str:
    """The shortest string that, cycled, spells ``kinds`` (one character per layer): "SSSL", "S", ..."""
    for period in range(1, len(kinds) + 1):
        if all(kinds[i] == kinds[i % period] for i in range(len(kinds))):
            return "".join(kinds[:period])
    return "".join(kinds)
