"""The attention backend registry: one class per kernel, chosen by ``model.attention_kernel``.

A backend turns one layer's queries, keys and values into its attention output, given the forward's
:class:`~pretrain.model.masking.AttentionPlan` (query count, document ids, device, and a cache so each
mask is built once per forward and window). Every module of this package is imported when the registry
is first asked, so adding a kernel is one file::

    # pretrain/model/backends/naive.py
    import torch

    from pretrain.model.backends.base import AttentionBackend, register_backend
    from pretrain.model.backends.sdpa import dense_mask

    @register_backend("naive")
    class Naive(AttentionBackend):
        def prepare(self, plan, k_start, k_len, window, needs_mask):
            pass

        def attend(self, plan, q, k, v, k_start, k_len, window, needs_mask, scale, softcap):
            mask = dense_mask(*plan.positions(k_start, k_len), plan.doc_ids, window)
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
            s = (q @ k.transpose(-1, -2)) * (scale or q.shape[-1] ** -0.5)
            if softcap:
                s = softcap * torch.tanh(s / softcap)
            return s.masked_fill(~mask, float("-inf")).softmax(-1) @ v

and ``model.attention_kernel = "naive"`` then selects it. ``attend`` receives the keys a windowed layer
can still see (from ``k_start``; ``k_len`` counts every key, cached ones included) and must apply
causality, the document mask and the window; ``needs_mask`` is False when plain causal attention (or,
for one query, none) is already exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pretrain.registry import Registry

BACKENDS: Registry[type[AttentionBackend]] = Registry("attention backend", "pretrain.model.backends")
B = TypeVar("B", bound="type[AttentionBackend]")


class AttentionBackend:
    """One attention kernel. :meth:`select` lets a policy backend (``auto``) hand a call to another."""

    name: ClassVar[str] = ""

    def select(self, plan: Any, needs_mask: bool, k_len: int) -> AttentionBackend:
        return self

    def prepare(self, plan: Any, k_start: int, k_len: int, window: int, needs_mask: bool) -> None:
        """Build (into the plan's cache) the mask a cache-free forward will need, before any layer runs."""
        raise NotImplementedError

    def attend(self, plan: Any, q: Any, k: Any, v: Any, k_start: int, k_len: int, window: int,
               needs_mask: bool, scale: float | None, softcap: float) -> Any:
        """q [B, H, T, D]; k, v [B, Hkv, S, D] from key ``k_start`` on. Returns [B, H, T, D]."""
        raise NotImplementedError


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator: register an :class:`AttentionBackend` under ``name``."""
    def wrap(cls: B) -> B:
        cls.name = name
        return BACKENDS.add(name, cls)
    return wrap


def backend_names() -> list[str]:
    return sorted(BACKENDS.all())


def get_backend(name: str) -> AttentionBackend:
    """The backend registered as ``name``; a one-line error naming the config field otherwise."""
    backends = BACKENDS.all()
    if name not in backends:
        raise ValueError(f"config field 'model.attention_kernel': {name!r} is not one of {', '.join(sorted(backends))}")
    return backends[name]()
