"""Which attention kernel runs, and with which mask, for one forward pass.

Every layer of a forward sees the same queries (positions ``offset .. offset + T - 1``) and the same
documents; only the sliding window differs between layers. :class:`AttentionPlan` is built once per
forward and builds each mask once per distinct window, so a 32-layer "SSSL" model makes two masks.

A query at position i may attend a key at position j when

    j <= i  (causal)  and  doc[i] == doc[j]  (document masking)  and  i - j < window  (when windowed)

which is the Hugging Face convention (``kv_idx > q_idx - sliding_window``): a window of W keys
including the query itself. The kernel that computes it is an attention backend chosen by
``model.attention_kernel``, one class each in :mod:`pretrain.model.backends` (``sdpa``: SDPA with a
dense mask or ``is_causal``; ``flex``: FlexAttention block masks; ``auto``, the default: flex on CUDA
where a T x T mask would be needed, sdpa otherwise). The plan owns the geometry (which keys a layer
still sees, whether anything masks) and the mask cache; the backend owns the kernel and its masks.

With a KV cache, a windowed layer only reads the keys that can still be inside the window (the last
``window + T - 1``), so decoding past the window costs O(window) per token and gives exactly the result
of recomputing without a cache.
"""

from __future__ import annotations

import torch

from pretrain.model.backends import get_backend


class AttentionPlan:
    """Kernel choice and masks for one forward of ``q_len`` queries, optionally masked by document.

    The queries are always the last ``q_len`` of the keys a layer passes to :meth:`attend` (a KV cache
    holds every earlier position from 0), so positions follow from the key count alone.
    """

    def __init__(self, q_len: int, doc_ids: torch.Tensor | None = None, kernel: str = "auto",
                 device: torch.device | str = "cpu"):
        self.backend = get_backend(kernel)  # a one-line error naming model.attention_kernel if unknown
        self.q_len, self.doc_ids = q_len, doc_ids
        self.device = torch.device(device)
        self.kernel = kernel
        self._masks: dict[tuple, object] = {}

    def cached(self, key: tuple, build):
        """The mask stored under ``key``, built by ``build()`` the first time (once per forward)."""
        if key not in self._masks:
            self._masks[key] = build()
        return self._masks[key]

    def positions(self, k_start: int, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Query positions and the positions of the keys from ``k_start`` (the queries are the last keys)."""
        q_pos = torch.arange(k_len - self.q_len, k_len, device=self.device)
        return q_pos, torch.arange(k_start, k_len, device=self.device)

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

    def prepare(self, windows: set[int]) -> None:
        """Build the masks of a cache-free forward up front (one per window), so that compiled blocks only
        look them up and never trace mask construction."""
        for window in sorted(windows):
            needs_mask = self._needs_mask(0, self.q_len, window)
            self.backend.select(self, needs_mask, self.q_len).prepare(self, 0, self.q_len, window, needs_mask)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int = 0, scale: float | None = None,
               softcap: float = 0.0) -> torch.Tensor:
        """q [B, H, T, D]; k, v [B, Hkv, S, D] (all cached + new keys). Returns [B, H, T, D]."""
        k_len = k.shape[2]
        k_start = self._key_start(k_len, window)
        if k_start:
            k, v = k[:, :, k_start:], v[:, :, k_start:]
        needs_mask = self._needs_mask(k_start, k_len, window)
        backend = self.backend.select(self, needs_mask, k_len)
        return backend.attend(self, q, k, v, k_start, k_len, window, needs_mask, scale, softcap)
