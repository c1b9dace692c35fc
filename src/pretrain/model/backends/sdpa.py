"""``sdpa``: ``F.scaled_dot_product_attention`` with ``is_causal=True`` when nothing else masks (flash /
memory-efficient kernels on a GPU), else a dense boolean [B, 1, T, S] mask. Works forward and backward
everywhere (the CPU path), but the mask costs T^2 memory. Soft-capped logits (Gemma 2/3) cannot be
expressed in SDPA, so with a cap it computes softmax(QK^T) itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrain.model.backends.base import AttentionBackend, register_backend

# scaled_dot_product_attention shares key/value heads itself (enable_gqa) from torch 2.5 on.
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


def dense_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, doc_ids: torch.Tensor | None, window: int) -> torch.Tensor:
    """Boolean [B or 1, 1, Tq, Tk]: True where a query may attend a key (causal, same document, window)."""
    allowed = k_pos[None, :] <= q_pos[:, None]
    if window:
        allowed = allowed & (q_pos[:, None] - k_pos[None, :] < window)
    allowed = allowed[None]
    if doc_ids is not None:  # only without a cache, so query and key positions are both 0..T-1
        allowed = allowed & (doc_ids[:, :, None] == doc_ids[:, None, :])
    return allowed[:, None]


@register_backend("sdpa")
class SDPA(AttentionBackend):
    def _mask(self, plan, k_start: int, k_len: int, window: int) -> torch.Tensor:
        return plan.cached(("dense", k_start, k_len, window),
                           lambda: dense_mask(*plan.positions(k_start, k_len), plan.doc_ids, window))

    def prepare(self, plan, k_start, k_len, window, needs_mask) -> None:
        if needs_mask:
            self._mask(plan, k_start, k_len, window)

    def attend(self, plan, q, k, v, k_start, k_len, window, needs_mask, scale, softcap) -> torch.Tensor:
        mask = self._mask(plan, k_start, k_len, window) if needs_mask else None
        is_causal = mask is None and plan.q_len > 1  # then queries and keys are the same positions
        if softcap:
            return _softcapped(q, k, v, mask, scale, softcap, causal=is_causal)
        gqa = q.shape[1] != k.shape[1]
        if gqa and not _SDPA_HAS_GQA:  # torch < 2.5: share heads by copying
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        extra = {"enable_gqa": gqa} if _SDPA_HAS_GQA else {}
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, **extra)


def _softcapped(q, k, v, mask, scale, cap, causal) -> torch.Tensor:
    """Reference attention with tanh soft-capped logits (no SDPA kernel takes a cap)."""
    if q.shape[1] != k.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scores = (q @ k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    scores = cap * torch.tanh(scores / cap)
    if causal:
        pos = torch.arange(q.shape[2], device=q.device)
        mask = (pos[None, :] <= pos[:, None])[None, None]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.float().softmax(dim=-1).to(q.dtype) @ v
