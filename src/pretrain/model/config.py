"""Model configuration: the shape of a Llama-style decoder and its optional parts (RoPE scaling, MoE, MTP).

Besides the Llama recipe, the fields below express the variants of the open models people continue
pre-training from (see docs/model.md for the table): decoupled head width (Qwen3, Gemma 3), q/k/v
biases (Qwen2), attention/MLP biases (Llama variants), sliding windows (Mistral, Gemma 3), post- and
sandwich-norm placement and whole-projection QK-norm (OLMo 2, Gemma 3), (1 + w) norms, embedding
scaling, GeGLU, local RoPE bases and soft-capping (Gemma), and NoPE layers (SmolLM3). Each is honoured
by our own forward, training, generation and KV cache, not only by import/export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pretrain.configlib import check
from pretrain.model.backends.base import backend_names
from pretrain.model.size import count_params, flops_per_token


@dataclass
class RopeScalingConfig:
    type: Literal["none", "linear", "dynamic", "yarn", "llama3"] = "none"
    """RoPE scaling for context extension: none, linear (position interpolation), dynamic NTK, YaRN, Llama-3."""
    factor: float = 1.0
    """Context extension factor s (new context / original context)."""
    original_max_position: int = 0
    """Context length the model was trained at before scaling (0 = model.max_seq_len)."""
    beta_fast: float = 32.0
    """YaRN: rotations above which dimensions are left unscaled."""
    beta_slow: float = 1.0
    """YaRN: rotations below which dimensions are fully interpolated."""
    attn_factor: float = 0.0
    """YaRN attention temperature multiplier (0 = the default 0.1 ln s + 1)."""
    low_freq_factor: float = 1.0
    """Llama-3: wavelengths above original/low_freq_factor are divided by factor."""
    high_freq_factor: float = 4.0
    """Llama-3: wavelengths below original/high_freq_factor are kept."""

    def validate(self) -> None:
        check(self.factor >= 1.0, "factor", f"must be >= 1 (got {self.factor})")
        check(self.original_max_position >= 0, "original_max_position", "must be >= 0")
        check(self.beta_fast > self.beta_slow > 0, "beta_fast", f"must exceed beta_slow > 0 (got {self.beta_fast}, {self.beta_slow})")
        check(self.attn_factor >= 0, "attn_factor", "must be >= 0")
        check(
            self.high_freq_factor > self.low_freq_factor > 0,
            "high_freq_factor",
            f"must exceed low_freq_factor > 0 (got {self.high_freq_factor}, {self.low_freq_factor})",
        )


@dataclass
class MoEConfig:
    n_experts: int = 0
    """Routed experts per MoE layer (0 = dense model)."""
    top_k: int = 2
    """Experts each token is sent to."""
    n_shared: int = 0
    """Shared experts every token always uses (DeepSeek-MoE)."""
    expert_hidden: int = 0
    """Hidden size of each expert's SwiGLU (0 = the dense ffn hidden size / top_k)."""
    router_score: Literal["sigmoid", "softmax"] = "sigmoid"
    """Expert affinity: sigmoid per expert (DeepSeek-V3) or softmax over experts (Switch, Mixtral); the
    selected experts' scores are renormalised to sum to 1 either way."""
    balance: Literal["aux_loss", "aux_free", "none"] = "aux_free"
    """Load balancing: Switch/GShard auxiliary loss, DeepSeek-V3 auxiliary-loss-free bias, or none."""
    aux_loss_coef: float = 1e-2
    """Weight of the Switch/GShard auxiliary loss (balance = aux_loss)."""
    bias_update_speed: float = 1e-3
    """Gamma: per-step bias change of the auxiliary-loss-free balancing (DeepSeek-V3: 0.001)."""
    seq_aux_alpha: float = 0.0
    """Weight of the sequence-wise balance loss (DeepSeek-V3 uses ~1e-4; 0 = off)."""
    z_loss_coef: float = 0.0
    """Router z-loss weight (0 = off)."""
    first_dense_layers: int = 0
    """Number of leading layers kept dense."""

    def validate(self) -> None:
        check(self.n_experts >= 0, "n_experts", "must be >= 0")
        if self.n_experts:
            check(1 <= self.top_k <= self.n_experts, "top_k", f"must be in 1..n_experts={self.n_experts}")
        check(self.n_shared >= 0, "n_shared", "must be >= 0")
        check(self.expert_hidden >= 0, "expert_hidden", "must be >= 0")
        check(self.aux_loss_coef >= 0, "aux_loss_coef", "must be >= 0")
        check(self.bias_update_speed >= 0, "bias_update_speed", "must be >= 0")
        check(self.seq_aux_alpha >= 0, "seq_aux_alpha", "must be >= 0")
        check(self.z_loss_coef >= 0, "z_loss_coef", "must be >= 0")
        check(self.first_dense_layers >= 0, "first_dense_layers", "must be >= 0")


@dataclass
class MTPConfig:
    depth: int = 0
    """Number of sequential multi-token-prediction modules (DeepSeek-V3 uses 1; 0 = off)."""
    weight: float = 0.3
    """Loss weight lambda of the MTP losses (DeepSeek-V3: 0.3, then 0.1 late in training)."""
    weight_late: float = 0.1
    """Lambda after `late_fraction` of training."""
    late_fraction: float = 0.7
    """Fraction of training after which `weight_late` applies."""

    def weight_at(self, progress: float) -> float:
        """Lambda at training progress in [0, 1]: `weight`, then `weight_late` (DeepSeek-V3's step schedule)."""
        return self.weight if progress < self.late_fraction else self.weight_late

    def validate(self) -> None:
        check(self.depth >= 0, "depth", "must be >= 0")
        check(self.weight >= 0 and self.weight_late >= 0, "weight", "MTP loss weights must be >= 0")
        check(0.0 <= self.late_fraction <= 1.0, "late_fraction", "must be in [0, 1]")


@dataclass
class ModelConfig:
    vocab_size: int = 0
    """Vocabulary size (0 = taken from the tokenizer)."""
    dim: int = 256
    """Residual stream width."""
    n_layers: int = 4
    """Number of transformer blocks."""
    n_heads: int = 4
    """Attention (query) heads."""
    n_kv_heads: int = 0
    """Key/value heads for grouped-query attention (0 = n_heads, i.e. multi-head; 1 = multi-query)."""
    attn_head_dim: int = 0
    """Width of each attention head (0 = dim / n_heads; Qwen3 and Gemma 3 decouple it, e.g. 1024 wide with
    16 heads of 128)."""
    ffn_hidden: int = 0
    """SwiGLU hidden size (0 = 8/3 * dim rounded up to multiple_of)."""
    multiple_of: int = 64
    """Round the automatic SwiGLU hidden size up to a multiple of this."""
    max_seq_len: int = 256
    """Longest context the model is trained or used at."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    rope_scaling: RopeScalingConfig = field(default_factory=RopeScalingConfig)
    """RoPE scaling for context extension."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    qk_norm: bool = False
    """RMSNorm on queries and keys per head (stabilises large learning rates)."""
    qk_norm_scope: Literal["head", "all"] = "head"
    """QK-norm over each head (Qwen3, Gemma 3) or over the whole q and k projections (OLMo 2)."""
    qkv_bias: bool = False
    """Biases on the query, key and value projections (Qwen2 / Qwen2.5; Llama's attention_bias)."""
    attn_out_bias: bool = False
    """Bias on the attention output projection (Llama's attention_bias sets it with qkv_bias)."""
    mlp_bias: bool = False
    """Biases on the feed-forward projections (Llama's mlp_bias)."""
    activation: Literal["silu", "gelu_tanh", "relu2"] = "silu"
    """Activation of the feed-forward: silu (SwiGLU, Llama), tanh-approximated GELU (GeGLU, Gemma) or
    relu(x)^2 (Primer; modded-nanogpt and nanochat, in a plain MLP: mlp_gated = false)."""
    mlp_gated: bool = True
    """Gated feed-forward down(act(gate(x)) * up(x)) (Llama); false: the plain down(act(up(x))) of
    GPT-2, modded-nanogpt and nanochat, whose automatic hidden size is 4 x dim (same weights as 8/3 x dim
    gated; MoE experts take the same shape)."""
    value_embeddings: str = ""
    """Layers that mix a value embedding into their attention values, cycled over the layers: V = yes,
    - = no ("" = none). Such a layer has its own token embedding table (kv heads x head width) whose row
    for each token is added to the values, scaled per kv head by a gate 3 sigmoid(W x[:12]) (ResFormer;
    modded-nanogpt, nanochat: every other layer ending with the last, "-V" for an even depth)."""
    smear_gate: bool = False
    """Mix the previous token's embedding into each position through a learned gate that starts closed
    (modded-nanogpt, nanochat; see pretrain.model.layers.SmearGate)."""
    x0_mix: bool = False
    """Before each layer, x <- a_i x + b_i x0 with learned scalars per layer, x0 the (smeared)
    embedding: the residual stream is rescaled and the input re-injected at every depth (modded-nanogpt's
    and nanochat's resid / x0 lambdas; a_i starts at 1.15 -> 1.05, b_i at 0.20 -> 0.05 across depth)."""
    zero_init_proj: bool = False
    """Initialise the projections into the residual stream (attention output, feed-forward down) to
    zero, so every block starts as the identity (modded-nanogpt, nanochat); else init_std /
    sqrt(2 n_layers)."""
    norm_placement: Literal["pre", "post", "sandwich"] = "pre"
    """Where the block norms sit: pre (x + f(norm(x)), Llama), post (x + norm(f(x)), OLMo 2) or sandwich
    (x + norm(f(norm(x))), Gemma 2/3)."""
    norm_unit_offset: bool = False
    """RMSNorm scales by (1 + weight) with the weight starting at 0 (Gemma); else by weight starting at 1."""
    scale_embeddings: bool = False
    """Multiply the token embeddings by sqrt(dim) before the first block (Gemma)."""
    attn_scale: float = 0.0
    """Attention logit scale (0 = 1/sqrt(head width); Gemma 3 uses query_pre_attn_scalar^-0.5)."""
    attn_softcap: float = 0.0
    """Soft-cap attention logits to cap * tanh(s / cap) (0 = off; Gemma 2 uses 50)."""
    logit_softcap: float = 0.0
    """Soft-cap the output logits to cap * tanh(z / cap) (0 = off; Gemma 2 uses 30)."""
    rope_pattern: str = "R"
    """Positional encoding per layer, cycled over the layers: R = RoPE, N = none (NoPE; SmolLM3 drops RoPE
    in every fourth layer, "RRRN")."""
    rope_theta_local: float = 0.0
    """RoPE base of the sliding-window (S) layers, without rope_scaling (0 = the layers share rope_theta
    and its scaling; Gemma 3: 10000 locally, 1e6 with scaling globally)."""
    hf_architecture: str = ""
    """Hugging Face model_type to export as ("" = the first stock one that expresses every feature, else
    "pretrain": our own modeling code, loaded with trust_remote_code; import records the source's, so
    import -> export gives back the same architecture and tensors)."""
    sliding_window: int = 0
    """Keys an "S" layer of window_pattern sees: the query itself and the window - 1 before it (0 = no
    sliding window; Mistral uses 4096, Gemma 3 1024)."""
    window_pattern: str = "L"
    """Attention span per layer, cycled over the layers: S = sliding window, L = full (nanochat "SSSL",
    Gemma 3 "SSSSSL", Mistral "S"). A string as long as n_layers spells every layer out."""
    attention_kernel: str = "auto"
    """An attention backend (pretrain.model.backends, one class each). auto: FlexAttention with a block mask
    on CUDA whenever documents or windows mask a forward without a KV cache, SDPA otherwise (causal fast
    path, decoding); sdpa: SDPA with a dense mask (the CPU path); flex: FlexAttention everywhere (its CPU
    version is forward-only)."""
    tie_embeddings: bool = True
    """Share the token embedding with the LM head."""
    init_std: float = 0.02
    """Standard deviation of the weight initialisation; output projections are scaled by 1/sqrt(2 n_layers)."""
    moe: MoEConfig = field(default_factory=MoEConfig)
    """Mixture-of-experts options (off when n_experts = 0)."""
    mtp: MTPConfig = field(default_factory=MTPConfig)
    """Multi-token prediction options (off when depth = 0)."""

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.attn_head_dim or self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        if self.ffn_hidden:
            return self.ffn_hidden
        if not self.mlp_gated:
            return 4 * self.dim
        h = int(8 * self.dim / 3)
        return self.multiple_of * ((h + self.multiple_of - 1) // self.multiple_of)

    @property
    def expert_hidden_dim(self) -> int:
        """Hidden size of one routed (or shared) expert."""
        return self.moe.expert_hidden or max(1, self.hidden_dim // self.moe.top_k)

    @property
    def rope_original_max_position(self) -> int:
        """Context the RoPE scaling is relative to."""
        return self.rope_scaling.original_max_position or self.max_seq_len

    def layer_window(self, layer: int) -> int:
        """Sliding window of a layer (0 = full attention); the pattern repeats over the layers."""
        return self.sliding_window if self.window_pattern[layer % len(self.window_pattern)] == "S" else 0

    def layer_rope(self, layer: int) -> str:
        """Which RoPE a layer applies: "global", "local" (windowed layer with its own base) or "none"."""
        if self.rope_pattern[layer % len(self.rope_pattern)] == "N":
            return "none"
        return "local" if self.rope_theta_local and self.layer_window(layer) else "global"

    def layer_value_embedding(self, layer: int) -> bool:
        """Whether a main layer mixes a value embedding into its attention values (value_embeddings)."""
        pattern = self.value_embeddings
        return bool(pattern) and layer < self.n_layers and pattern[layer % len(pattern)] == "V"

    def is_moe_layer(self, layer: int) -> bool:
        return self.moe.n_experts > 0 and layer >= self.moe.first_dense_layers

    # Size helpers that need no model (the scaling-law code calls them); see pretrain.model.size.
    def num_params(self, exclude_embeddings: bool = False, include_mtp: bool = True) -> int:
        """Parameter count of the model this config builds (vocab_size must be set)."""
        return count_params(self, exclude_embeddings=exclude_embeddings, include_mtp=include_mtp)

    def num_active_params(self, exclude_embeddings: bool = False, include_mtp: bool = False) -> int:
        """Parameters one token passes through (MoE: top_k routed plus shared experts)."""
        return count_params(self, exclude_embeddings=exclude_embeddings, include_mtp=include_mtp, active=True)

    def flops_per_token(self, seq_len: int | None = None, include_mtp: bool = True) -> float:
        """Training FLOPs per token: 6 N (N = active non-embedding params + LM head) + 12 L H d_head T."""
        return flops_per_token(self, seq_len or self.max_seq_len, include_mtp=include_mtp)

    def validate(self) -> None:
        check(self.dim > 0, "dim", "must be > 0")
        check(self.n_layers > 0, "n_layers", "must be > 0")
        check(self.attn_head_dim >= 0, "attn_head_dim", "must be >= 0")
        check(self.n_heads > 0 and (self.attn_head_dim or self.dim % self.n_heads == 0), "n_heads",
              f"must divide dim={self.dim} (or set attn_head_dim)")
        check(self.head_dim % 2 == 0, "attn_head_dim" if self.attn_head_dim else "n_heads",
              f"the head width {self.head_dim} must be even for RoPE")
        check(self.n_kv_heads >= 0, "n_kv_heads", f"must be >= 0 (0 = n_heads; got {self.n_kv_heads})")
        check(self.n_heads % self.kv_heads == 0, "n_kv_heads", f"must divide n_heads={self.n_heads}")
        check(self.max_seq_len > 0, "max_seq_len", "must be > 0")
        check(self.vocab_size >= 0, "vocab_size", "must be >= 0")
        check(self.ffn_hidden >= 0, "ffn_hidden", "must be >= 0")
        check(self.multiple_of > 0, "multiple_of", "must be > 0")
        check(self.rope_theta > 0, "rope_theta", "must be > 0")
        check(self.norm_eps > 0, "norm_eps", "must be > 0")
        check(self.init_std > 0, "init_std", "must be > 0")
        check(bool(self.window_pattern) and set(self.window_pattern) <= {"S", "L"}, "window_pattern",
              f"must be a string of S (sliding) and L (full) (got {self.window_pattern!r})")
        check(self.sliding_window >= 0, "sliding_window", f"must be >= 0 (got {self.sliding_window})")
        check(not ("S" in self.window_pattern and self.sliding_window == 0), "sliding_window",
              f"must be > 0 when window_pattern {self.window_pattern!r} has S layers")
        check(not (self.sliding_window and "S" not in self.window_pattern), "window_pattern",
              f"has no S layer, so sliding_window = {self.sliding_window} would never apply")
        check(bool(self.rope_pattern) and set(self.rope_pattern) <= {"R", "N"}, "rope_pattern",
              f"must be a string of R (RoPE) and N (no positional encoding) (got {self.rope_pattern!r})")
        for name in ("attn_scale", "attn_softcap", "logit_softcap", "rope_theta_local"):
            check(getattr(self, name) >= 0, name, f"must be >= 0 (got {getattr(self, name)})")
        check(self.norm_placement in ("pre", "post", "sandwich"), "norm_placement",
              f"must be pre, post or sandwich (got {self.norm_placement!r})")
        check(set(self.value_embeddings) <= {"V", "-"}, "value_embeddings",
              f"must be a string of V (value embedding) and - (none) (got {self.value_embeddings!r})")
        check(self.activation in ("silu", "gelu_tanh", "relu2"), "activation",
              f"must be silu, gelu_tanh or relu2 (got {self.activation!r})")
        check(self.qk_norm_scope in ("head", "all"), "qk_norm_scope", f"must be head or all (got {self.qk_norm_scope!r})")
        check(self.attention_kernel in backend_names(), "attention_kernel",
              f"must be one of {', '.join(backend_names())} (got {self.attention_kernel!r})")
        check(
            self.moe.first_dense_layers <= self.n_layers,
            "moe.first_dense_layers",
            f"must be <= n_layers={self.n_layers}",
        )
