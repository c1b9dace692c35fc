"""Weight averaging for the final model: EMA (Polyak) during the anneal and the mean of the last N checkpoints.

Averaging the weights along the end of training reaches a lower loss than the last iterate (Polyak &
Juditsky 1992; Izmailov et al. 2018 "SWA"; Llama 3 405B: "we compute the average of model checkpoints
(Polyak (1991) averaging) during annealing to produce the final pre-trained model"; Sanyal et al. 2023
"Early weight averaging"). The shadow copy is kept in fp32 whatever the training precision.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow <- decay * shadow + (1 - decay) * weights, over floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in _full_state(model).items() if v.is_floating_point()}
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        for k, v in _full_state(model).items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.shadow = {k: v.float() for k, v in state["shadow"].items()}

    def averaged_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with EMA values (cast to each tensor's dtype) in place of the weights."""
        out = {}
        for k, v in _full_state(model).items():
            out[k] = self.shadow[k].to(v.dtype) if k in self.shadow else v.detach().clone()
        return out


def _full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Local full tensors (DTensor shards gathered), keyed like the unwrapped model's state dict."""
    from torch.distributed.tensor import DTensor

    out = {}
    for k, v in model.state_dict().items():
        out[k] = v.full_tensor() if isinstance(v, DTensor) else v
    return out
