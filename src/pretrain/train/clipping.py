"""Global gradient-norm clipping, compiled into one region when the run compiles.

``torch.nn.utils.clip_grad_norm_`` runs eagerly: it groups the gradients by device and dtype in Python,
then takes a norm per tensor, stacks them, takes the global norm, and scales every gradient, each an
op of its own. On the CPU quickstart model that was ~2 ms of a ~76 ms bf16 step (docs/performance.md).
:class:`GradClipper` runs the same arithmetic (the per-tensor 2-norms, their 2-norm, the coefficient
``clamp(max_norm / (norm + 1e-6), max=1)``, the in-place scaling) through ``torch.compile``, so inductor
fuses it into a few kernels. The result is the one ``clip_grad_norm_`` gives up to the order of the
floating-point sums (tested against it).

The compiled form takes a list of plain tensors of one dtype and device, all present. Anything else
(DTensor shards under FSDP, a parameter without a gradient this step, mixed dtypes) goes to the
parallel plan's eager clipping, which knows how to reduce a sharded norm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _clip(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """clip_grad_norm_'s arithmetic for one group of gradients (norm type 2)."""
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    # max_norm = inf (clipping off) gives a coefficient of 1: the norm is still computed, for the log.
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total


def fits_compiled(grads: list[torch.Tensor | None]) -> bool:
    """Every gradient present, a plain tensor (not a DTensor shard), one dtype and one device."""
    if not grads or any(g is None or type(g) is not torch.Tensor for g in grads):
        return False
    first = grads[0]
    return all(g.dtype == first.dtype and g.device == first.device for g in grads)


class GradClipper:
    """Clip the global gradient norm of ``params`` to ``max_norm``; returns the norm before clipping.

    ``eager`` is the fallback (the parallel plan's ``clip_grad_norm``); ``compiled`` False uses it always.
    """

    def __init__(self, eager: Callable[[list[torch.Tensor], float], torch.Tensor], compiled: bool):
        self.eager = eager
        self.fn = torch.compile(_clip, dynamic=False) if compiled else None

    def __call__(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        if self.fn is not None:
            grads = [p.grad for p in params]
            if fits_compiled(grads):
                return self.fn(grads, float(max_norm))
        return self.eager(params, max_norm)
