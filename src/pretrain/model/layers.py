"""The small building blocks: RMSNorm, the gated feed-forward (SwiGLU / GeGLU) and the plain MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """relu(x)^2 (So et al. 2021, "Primer"; modded-nanogpt and nanochat use it in a plain MLP)."""
    return F.relu(x).square()


ACTIVATIONS = {"silu": F.silu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu2": relu_squared}


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019): no mean subtraction, no bias.

    Normalises in float32 and scales in the input dtype, as Llama does, so bf16 training stays stable and
    exported models match ``transformers`` exactly. With ``unit_offset`` (Gemma) the scale is 1 + weight
    with the weight starting at 0, applied in float32 as Gemma does (so weight decay pulls it towards 1).
    """

    def __init__(self, dim: int, eps: float = 1e-5, unit_offset: bool = False):
        super().__init__()
        self.eps, self.unit_offset = eps, unit_offset
        self.weight = nn.Parameter(torch.zeros(dim) if unit_offset else torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        if self.unit_offset:
            return (normed * (1.0 + self.weight.float())).to(x.dtype)
        return normed.to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """Gated feed-forward down(act(gate(x)) * up(x)) (Shazeer 2020, "GLU Variants Improve Transformer"):
    SwiGLU with silu (Llama), GeGLU with tanh-GELU (Gemma); optional biases (Llama's mlp_bias)."""

    def __init__(self, dim: int, hidden: int, bias: bool = False, activation: str = "silu"):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=bias)
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.gate(x)) * self.up(x))


class PlainMLP(nn.Module):
    """Ungated feed-forward down(act(up(x))) (GPT-2's shape; ReLU^2 in modded-nanogpt and nanochat).

    The projections keep the gated module's names ``up`` and ``down`` so initialisation, Muon grouping
    and zero-initialised output projections treat both kinds alike."""

    def __init__(self, dim: int, hidden: int, bias: bool = False, activation: str = "relu2"):
        super().__init__()
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))
