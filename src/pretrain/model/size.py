"""Parameter and FLOP counts from a ModelConfig alone, without building the model.

The scaling-law code sizes models from configs, and MFU needs FLOPs per token, so both live here as
closed-form sums over the same pieces :mod:`pretrain.model.transformer` builds. A test checks
``count_params(cfg)`` against ``sum(p.numel())`` of the real model.

FLOPs per token follow Kaplan et al. (2020) and PaLM (Chowdhery et al. 2022, appendix B): a matmul
with N weights costs 2N FLOPs per token forward and 4N backward, so training costs 6N, plus the
attention scores and weighted values, 2 * 2 * T * d_attn per layer forward, i.e. 12 * L * H * d_head * T
for training. Like PaLM and nanoGPT we count the full T x T score matrix (a causal kernel skips about
half of it), so MFU figures are comparable with theirs. N is the parameters a token actually multiplies
by: non-embedding parameters (top_k routed plus shared experts for MoE) plus the LM head (an embedding
lookup costs no FLOPs, the head's matmul does, tied or not). Value embeddings count as embeddings
(a lookup; their gates' few weights are left out of the FLOPs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pretrain.model.config import ModelConfig


def _attention_params(cfg: ModelConfig) -> int:
    q_width, kv_width = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    n = 2 * cfg.dim * q_width + 2 * cfg.dim * kv_width  # q, o and k, v weights
    n += (q_width + 2 * kv_width) * cfg.qkv_bias + cfg.dim * cfg.attn_out_bias
    if cfg.qk_norm:
        n += q_width + kv_width if cfg.qk_norm_scope == "all" else 2 * cfg.head_dim
    return n


def _gated_ffn_params(cfg: ModelConfig, hidden: int) -> int:
    """One feed-forward of this hidden size: gate, up, down (the plain MLP of mlp_gated = false: up, down)."""
    if not cfg.mlp_gated:
        return 2 * cfg.dim * hidden + (hidden + cfg.dim) * cfg.mlp_bias
    return 3 * cfg.dim * hidden + (2 * hidden + cfg.dim) * cfg.mlp_bias


def _ffn_params(cfg: ModelConfig, moe: bool, active: bool) -> int:
    if not moe:
        return _gated_ffn_params(cfg, cfg.hidden_dim)
    expert = _gated_ffn_params(cfg, cfg.expert_hidden_dim)
    routed = cfg.moe.top_k if active else cfg.moe.n_experts
    router = cfg.moe.n_experts * cfg.dim
    shared = _gated_ffn_params(cfg, cfg.expert_hidden_dim * cfg.moe.n_shared) if cfg.moe.n_shared else 0
    return router + routed * expert + shared


def _block_params(cfg: ModelConfig, moe: bool, active: bool) -> int:
    norms = 4 if cfg.norm_placement == "sandwich" else 2
    return norms * cfg.dim + _attention_params(cfg) + _ffn_params(cfg, moe, active)


VE_GATE_CHANNELS = 12  # input channels the value-embedding gate reads (nanochat's choice; attention.py builds it)


def _value_embedding_params(cfg: ModelConfig) -> int:
    """Value-embedding tables (looked up, no FLOPs) and their gates (a tiny matmul) of all layers."""
    layers = sum(cfg.layer_value_embedding(i) for i in range(cfg.n_layers))
    return layers * (cfg.vocab_size * cfg.kv_heads * cfg.head_dim + min(VE_GATE_CHANNELS, cfg.dim) * cfg.kv_heads)


def _mtp_module_params(cfg: ModelConfig, active: bool) -> int:
    # Two input norms, the 2d -> d projection, one block, its own output norm (head and embedding are shared).
    return 2 * cfg.dim + 2 * cfg.dim * cfg.dim + _block_params(cfg, cfg.is_moe_layer(cfg.n_layers - 1), active) + cfg.dim


def count_params(
    cfg: ModelConfig, exclude_embeddings: bool = False, include_mtp: bool = True, active: bool = False
) -> int:
    """Parameters of ``Transformer(cfg)``.

    exclude_embeddings drops the token embedding and, when untied, the LM head (Kaplan's non-embedding
    count). active counts only the experts one token uses. include_mtp adds the MTP modules.
    """
    if cfg.vocab_size <= 0:
        raise ValueError("model.vocab_size must be set (> 0) to count parameters")
    n = sum(_block_params(cfg, cfg.is_moe_layer(i), active) for i in range(cfg.n_layers)) + cfg.dim  # + final norm
    n += (min(24, cfg.dim) + 1 if cfg.smear_gate else 0) + (2 * cfg.n_layers if cfg.x0_mix else 0)  # scalars
    if include_mtp:
        n += cfg.mtp.depth * _mtp_module_params(cfg, active)
    if not exclude_embeddings:
        n += cfg.vocab_size * cfg.dim * (1 if cfg.tie_embeddings else 2) + _value_embedding_params(cfg)
    return n


def flops_per_token(cfg: ModelConfig, seq_len: int, include_mtp: bool = True) -> float:
    """Training FLOPs per token (forward + backward) at context ``seq_len``; see the module docstring."""
    n_matmul = count_params(cfg, exclude_embeddings=True, include_mtp=False, active=True)
    n_matmul += cfg.vocab_size * cfg.dim  # the LM head
    layers = cfg.n_layers
    if include_mtp and cfg.mtp.depth:
        # Each MTP module runs its projection, one block and the shared head again.
        n_matmul += cfg.mtp.depth * (_mtp_module_params(cfg, active=True) + cfg.vocab_size * cfg.dim)
        layers += cfg.mtp.depth
    attention = 12 * layers * cfg.n_heads * cfg.head_dim * seq_len
    return float(6 * n_matmul + attention)
