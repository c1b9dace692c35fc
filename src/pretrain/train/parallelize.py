"""Execution transforms applied to a pure model: FP8 linear layers and torch.compile per block.

The boundary (torchtitan keeps it the same way): ``pretrain.model`` builds a plain ``nn.Module`` that
knows nothing of devices, number formats or compilers. The functions here take such a model and change
*how* it executes, never *what* it computes (up to FP8 rounding) nor its parameter names, so its
checkpoints load with or without them. The trainer applies them in torchtitan's order, before the
DDP / FSDP wrap: FP8 conversion, activation checkpointing, compile per block, then the data-parallel
wrap (a whole-model compile, the older option, wraps the result instead).

FP8: torchao's float8 training (``convert_to_float8_training``) swaps each eligible ``nn.Linear`` in the
transformer blocks for a ``Float8Linear``: its matmuls run in float8 (e4m3 forward, e5m2 for the
gradient) with dynamic per-tensor scales, while the weights, gradients and optimizer state stay in
their usual dtypes. It needs FP8 tensor cores (compute capability 8.9: Ada, Hopper and newer); anywhere
else ``train.fp8 = true`` is refused in one line rather than silently run in bf16. The output head
(tied to the embedding) and the MoE router stay in high precision, as do layers whose dimensions are not
multiples of 16 (the float8 matmul kernel's requirement).
"""

from __future__ import annotations

import torch
from torch import nn

from pretrain.configlib import ConfigError
from pretrain.train.precision import find_blocks

FP8_MIN_CAPABILITY = (8, 9)
FP8_SKIP = ("router",)
"""Linear layers (by the last part of their name) kept out of FP8: the MoE router's softmax over experts."""


def fp8_unsupported(device: torch.device) -> str | None:
    """Why this device cannot run FP8 matmuls, or None when it can."""
    if device.type != "cuda":
        return f"FP8 matmuls need a CUDA GPU of compute capability >= 8.9 (Ada, Hopper or newer); this run is on {device.type}"
    cap = torch.cuda.get_device_capability(device)
    if cap < FP8_MIN_CAPABILITY:
        return (f"FP8 matmuls need compute capability >= 8.9 (Ada, Hopper or newer); "
                f"{torch.cuda.get_device_name(device)} is {cap[0]}.{cap[1]}")
    return None


def check_fp8(enabled: bool, device: torch.device) -> None:
    """Refuse ``train.fp8 = true`` in one line on a device without FP8 (the trainer calls it first thing)."""
    if enabled and (why := fp8_unsupported(device)):
        raise ConfigError("train.fp8", why)


def fp8_eligible(fqn: str, module: nn.Module) -> bool:
    """A block's linear layer whose dimensions the float8 kernel takes (multiples of 16)."""
    return (isinstance(module, nn.Linear) and fqn.split(".", 1)[0] == "layers"
            and fqn.rsplit(".", 1)[-1] not in FP8_SKIP
            and module.in_features % 16 == 0 and module.out_features % 16 == 0)


def apply_fp8(model: nn.Module, device: torch.device) -> list[str]:
    """Convert the eligible linear layers to torchao Float8Linear; returns their names.

    Raises :class:`ConfigError` (``train.fp8``) on a device without FP8 or when torchao is missing.
    """
    check_fp8(True, device)
    return convert_fp8(model)


def convert_fp8(model: nn.Module) -> list[str]:
    """The module swap alone (no device check): what ``apply_fp8`` does once the device is known to fit."""
    try:
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training
    except ImportError as exc:
        raise ConfigError("train.fp8", f"needs torchao ({exc}); install it with pip install 'pretrain[gpu]'") from None
    names = [fqn for fqn, m in model.named_modules() if fp8_eligible(fqn, m)]
    # Dynamic per-tensor scaling (the torchao default, what torchtitan uses for Llama 3 training).
    convert_to_float8_training(model, config=Float8LinearConfig(), module_filter_fn=lambda m, fqn: fp8_eligible(fqn, m))
    return names


def compile_blocks(model: nn.Module, fullgraph: bool = False, backend: str = "inductor") -> int:
    """``torch.compile`` each transformer block in place; returns the number of blocks compiled.

    Each block is compiled once and the compiled code is reused by every block of the same shape, so
    compile time does not grow with depth, and graph breaks stay inside one block. ``Module.compile``
    keeps the module and its parameter names (no ``_orig_mod.`` prefix in checkpoints), and it can be
    done before FSDP's per-block ``fully_shard`` (torchtitan's order).
    """
    blocks = find_blocks(model)
    for block in blocks:
        block.compile(fullgraph=fullgraph, backend=backend)
    return len(blocks)


def usable_compile_scope(scope: str, device: torch.device) -> tuple[str, str]:
    """The compile scope that can run on ``device``, and why it differs from the asked one ("" if not).

    On a CPU inductor writes C++ and builds it with the compiler torch._inductor.config.cpp.cxx names
    (g++ unless set); a machine without one would fail at the first step, minutes into a run. There
    the model runs eager instead, and the run's start event says so (the maths is the same, only
    slower), so a preset that compiles still runs on a fresh machine.
    """
    if scope == "none" or device.type != "cpu":
        return scope, ""
    import shutil

    from torch._inductor import config as inductor_config

    names = [n for n in (getattr(inductor_config.cpp, "cxx", None) or ()) if n] or ["g++"]
    if any(shutil.which(n) for n in names):
        return scope, ""
    return "none", f"train.compile ignored: no C++ compiler ({', '.join(names)}) on PATH for inductor; eager"


def apply_transforms(model: nn.Module, device: torch.device, fp8: bool, activation_checkpointing: bool,
                     compile_scope: str) -> dict:
    """In order: FP8 (when asked), activation checkpointing, per-block compile (``compile_scope ==
    "blocks"``; "model" and "none" leave compiling to the caller). Returns what was done, for the log."""
    from pretrain.train.precision import apply_activation_checkpointing

    done: dict = {}
    if fp8:
        done["fp8_layers"] = len(apply_fp8(model, device))
    if activation_checkpointing:
        done["checkpointed_blocks"] = apply_activation_checkpointing(model)
    if compile_scope == "blocks":
        done["compiled_blocks"] = compile_blocks(model)
    return done
