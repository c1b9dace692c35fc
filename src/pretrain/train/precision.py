"""Device and precision policy: bf16 autocast over fp32 master weights where the hardware multiplies bf16
natively (CUDA; CPUs with AVX512-BF16 or AMX), fp32 on other CPUs.

Why it depends on the CPU: without AMX/AVX512-BF16, PyTorch's CPU bf16 matmuls are emulated and run
~100x slower than fp32 on AVX2 machines; with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake /
Sapphire Rapids and later) oneDNN's bf16 matmul is ~4x faster than fp32 (4096x128 by 128x512 on 2 cores
of a Zen CPU: 0.64 ms against 2.52 ms; docs/performance.md). The weights, gradients and optimizer state
stay fp32 (master weights) and autocast runs matmuls in bf16 (Micikevicius et al. 2018 "Mixed Precision
Training"; bf16 needs no loss scaling). fp16 uses a GradScaler.

The precision map (``train.fp32_modules``) names modules that must run in fp32 even under autocast:
RMSNorm and MoE routers by default (their reductions and softmax over experts are precision-sensitive).

The residual stream (``train.residual_stream``): under autocast only the matmuls run in bf16, so with
fp32 embeddings the stream between them stays fp32 and every block pays casts and fp32 elementwise work
in both passes. ``"compute"`` keeps it in the autocast dtype instead, as nanochat does with its bf16
embeddings: each embedding's output is cast once, and the fp32 norms hand their result back in their
input's dtype (they still normalise in fp32). The weights, gradients, optimizer state and the loss
(logits are cast to fp32 before the cross-entropy) are fp32 either way. ``"auto"`` picks it under bf16
(measured on the quickstart model, docs/performance.md), fp32 otherwise (fp16's range is too narrow
for an unscaled residual stream).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
NORM_TYPES = (nn.RMSNorm, nn.LayerNorm, nn.Identity)
"""Besides the model's own RMSNorm: modules whose fp32 result goes back to the stream's dtype under a
``"compute"`` residual stream (an absent norm is an Identity and must not lift the stream to fp32)."""


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config field 'train.device': {spec!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def native_bf16(device: torch.device) -> bool:
    """The device multiplies bf16 matrices in hardware (not emulated): CUDA with bf16, or a CPU with
    AVX512-BF16 or AMX tiles."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe is not None and probe() for probe in probes)


def resolve_precision(spec: str, device: torch.device) -> str:
    if spec == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if native_bf16(device) else "fp32"
    return spec


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def resolve_residual_stream(spec: str, precision: str) -> str:
    """``train.residual_stream`` for this run: "compute" or "fp32" (always "fp32" without autocast)."""
    if precision == "fp32":
        return "fp32"
    if spec == "auto":
        return "compute" if precision == "bf16" else "fp32"
    return spec


def _fp32_forward(forward, *args, **kwargs):
    with torch.autocast(device_type="cuda" if torch.cuda.is_available() else "cpu", enabled=False):
        args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
        return forward(*args, **kwargs)


def _fp32_forward_same_dtype(forward, x, *args, **kwargs):
    """fp32 inside, the input's dtype outside: a norm of a bf16 stream returns bf16 (compiled, the casts
    fuse into the norm's kernel, so the stream is read and written in bf16)."""
    return _fp32_forward(forward, x, *args, **kwargs).to(x.dtype)


def _is_norm(m: nn.Module) -> bool:
    from pretrain.model.layers import RMSNorm

    return isinstance(m, (RMSNorm, *NORM_TYPES))


def apply_precision_map(model: nn.Module, patterns: list[str], precision: str,
                        residual_stream: str = "fp32") -> list[str]:
    """Make modules whose name contains one of ``patterns`` run outside autocast; returns their names.

    With ``residual_stream == "compute"`` the norms among them return their input's dtype (the rest,
    MoE routers, keep an fp32 result for their softmax)."""
    if precision == "fp32" or not patterns:
        return []
    hit = []
    for name, m in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if name and any(p in leaf for p in patterns):
            wrapper = _fp32_forward_same_dtype if residual_stream == "compute" and _is_norm(m) else _fp32_forward
            m.forward = functools.partial(wrapper, m.forward)  # instance attribute: state dict unchanged
            hit.append(name)
    return hit


def _to_autocast_dtype(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    device = output.device.type
    # Read at run time (torch.compile folds it to a constant and guards on it): evaluation outside
    # autocast keeps fp32 embeddings, which the fp32 weights of the layers after them need.
    if output.is_floating_point() and torch.is_autocast_enabled(device):
        return output.to(torch.get_autocast_dtype(device))
    return output


def apply_residual_stream(model: nn.Module, residual_stream: str) -> list[str]:
    """Under ``"compute"``, cast every embedding's output to the autocast dtype (a forward hook: the
    parameters and the state dict are unchanged); returns the embeddings' names."""
    if residual_stream != "compute":
        return []
    hit = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Embedding):
            m.register_forward_hook(_to_autocast_dtype)
            hit.append(name)
    return hit


def find_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: ``model.layers`` (the Llama layout), else the longest ModuleList."""
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers):
        return list(layers)
    best: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, nn.ModuleList) and len(m) > len(best):
            best = list(m)
    return best


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every block in the backward pass (Chen et al. 2016); returns the number of blocks wrapped.

    The block's ``forward`` is replaced on the instance, so parameter names and checkpoints are unchanged.
    """
    from torch.utils.checkpoint import checkpoint

    blocks = find_blocks(model)
    for block in blocks:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
    return len(blocks)

