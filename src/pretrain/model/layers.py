"""The small building blocks: RMSNorm, the gated feed-forward (SwiGLU / GeGLU), the plain MLP and the
smear gate."""

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


SMEAR_CHANNELS = 24  # nanochat's: the gate reads the first 24 channels of the token's own embedding


class SmearGate(nn.Module):
    """Mix the previous token's embedding into each position: x_t + lam * sigmoid(w . x_t[:24]) * x_{t-1}
    (modded-nanogpt's and nanochat's "smear"). It hands the first layer a cheap bigram feature that
    attention would otherwise have to learn to fetch. ``lam`` starts at 0, so the gate starts closed and
    the model is unchanged at initialisation. Positions whose previous token is in another document
    (``doc_ids``) or absent (``prev`` None at the first position) get nothing."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(min(SMEAR_CHANNELS, dim)))  # 1-D: an AdamW scalar-style group
        self.lam = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None = None,
                doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, D]; prev [B, 1, D]: the embedding of the token before x[:, 0] (KV-cache decoding)."""
        first = prev if prev is not None else torch.zeros_like(x[:, :1])
        shifted = torch.cat([first, x[:, :-1]], dim=1)
        gate = self.lam * torch.sigmoid(x[..., : self.weight.numel()] @ self.weight)[..., None]
        if doc_ids is not None:
            same = torch.cat([torch.zeros_like(doc_ids[:, :1], dtype=torch.bool), doc_ids[:, 1:] == doc_ids[:, :-1]], 1)
            gate = gate * same[..., None]
        return x + gate.to(x.dtype) * shifted
