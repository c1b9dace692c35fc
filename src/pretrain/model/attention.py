"""Causal self-attention with grouped-query heads, optional QK-norm, RoPE, document masking and a KV cache.

Grouped-query attention (Ainslie et al. 2023, GQA) shares each key/value head among n_heads / n_kv_heads
query heads; n_kv_heads = 1 is multi-query attention (Shazeer 2019). QK-norm (Dehghani et al. 2023;
OLMo 2, Qwen3) RMS-normalises queries and keys per head before RoPE, which keeps attention logits
bounded at high learning rates.

All of it runs through ``F.scaled_dot_product_attention``: ``is_causal=True`` when there is no document
mask (the fast path, flash/memory-efficient kernels), a boolean block-diagonal causal mask otherwise
(works forward and backward on CPU and GPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.model.config import ModelConfig
from pretrain.model.layers import RMSNorm
from pretrain.model.rope import apply_rotary

# scaled_dot_product_attention shares key/value heads itself (enable_gqa) from torch 2.5 on.
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


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


def document_causal_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, T, T] mask, True where query i may attend key j: j <= i and same document."""
    T = doc_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=doc_ids.device).tril()
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (same_doc & causal)[:, None]


def offset_causal_mask(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """Causal mask for q_len new queries after k_len - q_len cached positions (bottom-right aligned)."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    return torch.arange(k_len, device=device)[None, :] <= q_pos


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, cache_index: int):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.cache_index = cache_index  # this layer's slot in a KVCache
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None = None) -> torch.Tensor:
        """x [B, T, dim]; mask None means plain causal attention over the whole (cached + new) sequence."""
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, head_dim]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.cache_index, k, v)
        # is_causal aligns top-left, which is right only when queries and keys are the same positions.
        is_causal = mask is None and T > 1 and k.shape[2] == T
        if mask is None and T > 1 and k.shape[2] != T:
            mask = offset_causal_mask(T, k.shape[2], x.device)
        if self.n_kv_heads != self.n_heads and not _SDPA_HAS_GQA:  # torch < 2.5: share heads by copying
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        gqa = {"enable_gqa": self.n_kv_heads != self.n_heads} if _SDPA_HAS_GQA else {}
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, **gqa)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
