"""Causal self-attention with grouped-query heads, optional QK-norm, RoPE, document masking and a KV cache.

Grouped-query attention (Ainslie et al. 2023, GQA) shares each key/value head among n_heads / n_kv_heads
query heads; n_kv_heads = 1 is multi-query attention (Shazeer 2019). QK-norm (Dehghani et al. 2023;
OLMo 2, Qwen3) RMS-normalises queries and keys per head before RoPE, which keeps attention logits
bounded at high learning rates.

Sliding-window layers (Mistral, Gemma 3, nanochat's "SSSL" pattern) see only the last
``model.sliding_window`` keys. The kernel (SDPA with a dense mask, or FlexAttention with a block mask)
and the masks are chosen once per forward by :class:`pretrain.model.masking.AttentionPlan`.
"""

from __future__ import annotations

import torch
from torch import nn

from pretrain.model.config import ModelConfig
from pretrain.model.layers import RMSNorm
from pretrain.model.masking import AttentionPlan
from pretrain.model.rope import apply_rotary
from pretrain.model.size import VE_GATE_CHANNELS  # defined with the counts that depend on it


class KVCache:
    """Preallocated keys and values for incremental decoding: [layers, B, kv_heads, max_len, head_dim].

    ``length`` positions are valid. Attention layers write the new positions in ``update``; the model
    calls ``advance`` once all layers have seen them. ``truncate`` drops rejected speculative tokens.
    """

    def __init__(self, n_layers: int, batch: int, n_kv_heads: int, head_dim: int, max_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        shape = (n_layers, batch, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0
        self.tokens: torch.Tensor | None = None
        """[B, max_len] token ids of the cached positions, kept by models that read the previous token
        (the smear gate); allocated by the model on first use."""

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; cannot append up to {end}")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        self.length = min(self.length, length)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, cache_index: int):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.cache_index = cache_index  # this layer's slot in a KVCache
        self.window = cfg.layer_window(layer)  # 0 = full attention
        self.rope = cfg.layer_rope(layer)  # which cos/sin table the model hands this layer ("none": NoPE)
        self.scale = cfg.attn_scale or None  # None: the kernels' 1/sqrt(head_dim)
        self.softcap = cfg.attn_softcap
        q_width, kv_width = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
        self.wq = nn.Linear(cfg.dim, q_width, bias=cfg.qkv_bias)
        self.wk = nn.Linear(cfg.dim, kv_width, bias=cfg.qkv_bias)
        self.wv = nn.Linear(cfg.dim, kv_width, bias=cfg.qkv_bias)
        self.wo = nn.Linear(q_width, cfg.dim, bias=cfg.attn_out_bias)
        # QK-norm per head normalises each head_dim slice; OLMo 2 normalises the whole projection at once.
        self.norm_all = cfg.qk_norm_scope == "all"
        q_norm_dim, k_norm_dim = (q_width, kv_width) if self.norm_all else (cfg.head_dim, cfg.head_dim)
        norm = {"eps": cfg.norm_eps, "unit_offset": cfg.norm_unit_offset}
        self.q_norm = RMSNorm(q_norm_dim, **norm) if cfg.qk_norm else None
        self.k_norm = RMSNorm(k_norm_dim, **norm) if cfg.qk_norm else None
        # Value embedding (model.value_embeddings): a per-token vector added to this layer's values, gated
        # per kv head from the first few input channels (nanochat's 12), so a layer can learn to use it.
        self.value_embed = self.ve_gate = None
        if cfg.layer_value_embedding(layer):
            self.value_embed = nn.Embedding(cfg.vocab_size, kv_width)
            self.ve_gate = nn.Linear(min(VE_GATE_CHANNELS, cfg.dim), cfg.kv_heads, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                plan: AttentionPlan | None, cache: KVCache | None = None,
                input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, dim] -> [B, T, dim]; ``plan`` says which keys the queries may see (None: causal);
        cos/sin None (or a NoPE layer) leaves queries and keys unrotated. ``input_ids`` [B, T] feed the
        value embedding of a layer that has one (and are required there)."""
        B, T, _ = x.shape
        plan = plan or AttentionPlan(T, device=x.device)
        q, k, v = self.wq(x), self.wk(x), self.wv(x)
        if self.q_norm is not None and self.norm_all:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, self.n_heads, self.head_dim)
        k = k.view(B, T, self.n_kv_heads, self.head_dim)
        v = v.view(B, T, self.n_kv_heads, self.head_dim)
        if self.value_embed is not None:
            if input_ids is None:
                raise ValueError("this layer has a value embedding (model.value_embeddings): pass input_ids")
            gate = 3.0 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate.in_features]))  # [B, T, kv_heads]
            ve = self.value_embed(input_ids).view(B, T, self.n_kv_heads, self.head_dim)
            v = v + gate.unsqueeze(-1) * ve  # the cache keeps the mixed values, as it keeps k after RoPE
        if self.q_norm is not None and not self.norm_all:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, head_dim]
        if cos is not None and self.rope != "none":
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.cache_index, k, v)  # every cached key: the plan trims to the window
        y = plan.attend(q, k, v, self.window, scale=self.scale, softcap=self.softcap)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
