"""``flex``: FlexAttention (``torch.nn.attention.flex_attention``) with a block mask computed from the
document ids and the window: no T x T tensor exists and fully masked blocks are skipped, so long-context
document-masked and sliding-window training stay at flash-like speed and linear memory. Compiled on
CUDA; on the CPU it runs forward only (torch has no CPU backward for it), which the tests use to check
it against the dense reference. A logit cap is applied as a ``score_mod``."""

from __future__ import annotations

import torch

from pretrain.model.backends.base import AttentionBackend, register_backend

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


def block_mask(plan, k_start: int, k_len: int, window: int):
    """The forward's block mask for keys ``k_start .. k_len - 1`` (built once per plan and window)."""
    def build():
        from torch.nn.attention.flex_attention import create_block_mask

        q0, docs = k_len - plan.q_len, plan.doc_ids

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
        return create_block_mask(mask_mod, batch, None, plan.q_len, k_len - k_start, device=plan.device,
                                 _compile=plan.device.type == "cuda")
    return plan.cached(("block", k_start, k_len, window), build)


@register_backend("flex")
class Flex(AttentionBackend):
    def prepare(self, plan, k_start, k_len, window, needs_mask) -> None:
        if needs_mask or plan.q_len > 1:
            block_mask(plan, k_start, k_len, window)

    def attend(self, plan, q, k, v, k_start, k_len, window, needs_mask, scale, softcap) -> torch.Tensor:
        score_mod = None
        if softcap:
            def score_mod(score, b, h, q_idx, kv_idx):
                return softcap * torch.tanh(score / softcap)
        block = block_mask(plan, k_start, k_len, window) if needs_mask or plan.q_len > 1 else None
        return _flex(q.device)(q, k, v, score_mod=score_mod, block_mask=block, scale=scale,
                               enable_gqa=q.shape[1] != k.shape[1])
