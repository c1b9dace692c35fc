"""Which attention kernel runs, and with which mask, for one forward pass.

Every layer of a forward sees the same queries (positions ``offset .. offset + T - 1``) and the same
documents; only the sliding window differs between layers. :class:`AttentionPlan` is built once per
forward and builds each mask once per distinct window, so a 32-layer "SSSL" model makes two masks.

A query at position i may attend a key at position j when

    j <= i  (causal)  and  doc[i] == doc[j]  (document masking)  and  i - j < window  (when windowed)

which is the Hugging Face convention (``kv_idx > q_idx - sliding_window``): a window of W keys
including the query itself. Kernels, chosen by ``model.attention_kernel``:

- ``sdpa`` (the CPU path, and the default on CPU): ``F.scaled_dot_product_attention``, with
  ``is_causal=True`` when nothing else applies (flash / memory-efficient kernels on a GPU), else a dense
  boolean [B, 1, T, S] mask. Works forward and backward everywhere, but the mask costs T^2 memory.
- ``flex``: FlexAttention (``torch.nn.attention.flex_attention``) with a block mask computed from the
  document ids and the window: no T x T tensor exists, fully masked blocks are skipped, so long-context
  document-masked and sliding-window training stay at flash-like speed and linear memory. Compiled on
  CUDA; on the CPU it runs forward only (torch has no CPU backward for it), which the tests use to
  check it against the dense reference.
- ``auto`` (default): ``flex`` on CUDA whenever a T x T mask would be needed (training, prefill),
  ``sdpa`` otherwise (the causal fast path, and decoding steps with a KV cache).

Attention-logit soft-capping (Gemma 2/3: ``cap * tanh(s / cap)``) cannot be expressed in SDPA, so with a
cap the dense path computes softmax(QK^T) itself and FlexAttention applies it as a ``score_mod``.

With a KV cache, a windowed layer only reads the keys that can still be inside the window (the last
``window + T - 1``), so decoding past the window costs O(window) per token and gives exactly the result
of recomputing without a cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# scaled_dot_product_attention shares key/value heads itself (enable_gqa) from torch 2.5 on.
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)
KERNELS = ("auto", "sdpa", "flex")
_compiled_flex = None


def _flex(device: torch.device):
    """flex_attention, compiled on CUDA (eager flex materialises the scores and is only a reference)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def dense_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, doc_ids: torch.Tensor | None, window: int) -> torch.Tensor:
    """Boolean [B or 1, 1, Tq, Tk]: True where a query may attend a key (causal, same document, window)."""
    allowed = k_pos[None, :] <= q_pos[:, None]
    if window:
        allowed = allowed & (q_pos[:, None] - k_pos[None, :] < window)
    allowed = allowed[None]
    if doc_ids is not None:  # only without a cache, so query and key positions are both 0..T-1
        allowed = allowed & (doc_ids[:, :, None] == doc_ids[:, None, :])
    return allowed[:, None]


class AttentionPlan:
    """Kernel choice and masks for one forward of ``q_len`` queries, optionally masked by document.

    The queries are always the last ``q_len`` of the keys a layer passes to :meth:`attend` (a KV cache
    holds every earlier position from 0), so positions follow from the key count alone.
    """

    def __init__(self, q_len: int, doc_ids: torch.Tensor | None = None, kernel: str = "auto",
                 device: torch.device | str = "cpu"):
        if kernel not in KERNELS:
            raise ValueError(f"config field 'model.attention_kernel': {kernel!r} is not one of {', '.join(KERNELS)}")
        self.q_len, self.doc_ids = q_len, doc_ids
        self.device = torch.device(device)
        self.kernel = kernel
        self._masks: dict[tuple, object] = {}

    def _use_flex(self, needs_mask: bool, k_len: int) -> bool:
        if self.kernel != "auto":
            return self.kernel == "flex"
        # auto: flex where the dense mask would be T x T (training, prefill). Decoding steps keep SDPA:
        # their mask is only T x S for a few queries, and a compiled flex would recompile for every new S.
        return self.device.type == "cuda" and needs_mask and k_len == self.q_len

    def _key_start(self, k_len: int, window: int) -> int:
        """First key a windowed layer can still see (keys before it are outside every query's window)."""
        if not window:
            return 0
        return max(0, k_len - self.q_len - window + 1)

    def _needs_mask(self, k_start: int, k_len: int, window: int) -> bool:
        if self.doc_ids is not None:
            return True
        if self.q_len == 1:  # one query sees every (already window-trimmed) key
            return False
        first_q = k_len - self.q_len
        # The window bites when the first query's window starts after the first key we kept.
        return first_q != k_start or bool(window and k_len - k_start > window)

    def _positions(self, k_start: int, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        q_pos = torch.arange(k_len - self.q_len, k_len, device=self.device)
        return q_pos, torch.arange(k_start, k_len, device=self.device)

    def _dense(self, k_start: int, k_len: int, window: int) -> torch.Tensor:
        key = ("dense", k_start, k_len, window)
        if key not in self._masks:
            self._masks[key] = dense_mask(*self._positions(k_start, k_len), self.doc_ids, window)
        return self._masks[key]

    def _block(self, k_start: int, k_len: int, window: int):
        key = ("block", k_start, k_len, window)
        if key not in self._masks:
            from torch.nn.attention.flex_attention import create_block_mask

            q0, docs = k_len - self.q_len, self.doc_ids

            def mask_mod(b, h, q_idx, kv_idx):  # indices are relative to the query / kept-key slices
                qp, kp = q_idx + q0, kv_idx + k_start
                ok = kp <= qp
                if window:
                    ok = ok & (qp - kp < window)
                if docs is not None:
                    ok = ok & (docs[b, q_idx] == docs[b, kv_idx])
                return ok

            batch = docs.shape[0] if docs is not None else None
            # Compiled on CUDA, so building the block mask never materialises the T x T mask either.
            self._masks[key] = create_block_mask(mask_mod, batch, None, self.q_len, k_len - k_start, device=self.device,
                                                 _compile=self.device.type == "cuda")
        return self._masks[key]

    def prepare(self, windows: set[int]) -> None:
        """Build the masks of a cache-free forward up front (one per window), so that compiled blocks only
        look them up and never trace mask construction."""
        for window in sorted(windows):
            needs_mask = self._needs_mask(0, self.q_len, window)
            if self._use_flex(needs_mask, self.q_len) and (needs_mask or self.q_len > 1):
                self._block(0, self.q_len, window)
            elif needs_mask:
                self._dense(0, self.q_len, window)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int = 0, scale: float | None = None,
               softcap: float = 0.0) -> torch.Tensor:
        """q [B, H, T, D]; k, v [B, Hkv, S, D] (all cached + new keys). Returns [B, H, T, D]."""
        k_len = k.shape[2]
        k_start = self._key_start(k_len, window)
        if k_start:
            k, v = k[:, :, k_start:], v[:, :, k_start:]
        needs_mask = self._needs_mask(k_start, k_len, window)
        gqa = q.shape[1] != k.shape[1]
        if self._use_flex(needs_mask, k_len):
            score_mod = None
            if softcap:
                def score_mod(score, b, h, q_idx, kv_idx):
                    return softcap * torch.tanh(score / softcap)
            block = self._block(k_start, k_len, window) if needs_mask or self.q_len > 1 else None
            return _flex(q.device)(q, k, v, score_mod=score_mod, block_mask=block, scale=scale, enable_gqa=gqa)
        mask = self._dense(k_start, k_len, window) if needs_mask else None
        if softcap:
            return _softcapped(q, k, v, mask, scale, softcap, causal=mask is None and self.q_len > 1)
        if gqa and not _SDPA_HAS_GQA:  # torch < 2.5: share heads by copying
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        extra = {"enable_gqa": gqa} if _SDPA_HAS_GQA else {}
        is_causal = mask is None and self.q_len > 1  # then queries and keys are the same positions
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
