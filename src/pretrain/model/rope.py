"""Rotary position embeddings (RoPE) and their context-extension scalings.

RoPE (Su et al. 2021, "RoFormer") rotates each pair of query/key channels by an angle proportional to
the position, with per-pair frequencies ``inv_freq[i] = theta^(-2i/d)``. Scalings change those
frequencies so a model trained at context L works at s * L:

- ``linear``: position interpolation (Chen et al. 2023), every frequency divided by s.
- ``dynamic``: dynamic NTK-aware scaling (bloc97/emozilla 2023): the base theta grows with the current
  sequence length once it exceeds L, so short inputs are unchanged.
- ``yarn``: YaRN (Peng et al. 2023): high frequencies (more than beta_fast rotations over L) kept,
  low frequencies (fewer than beta_slow rotations) interpolated by s, a linear ramp in between, and the
  attention logits sharpened by multiplying cos/sin by the attention factor 0.1 ln s + 1.
- ``llama3``: Llama 3.1's wavelength-banded scaling (Meta 2024): wavelengths shorter than
  L / high_freq_factor kept, longer than L / low_freq_factor divided by s, smooth blend in between.

Each variant reproduces the matching ``rope_type`` of Hugging Face ``transformers`` in float32 bit for
bit (tests compare against ``transformers.modeling_rope_utils``), so exported models behave the same.
Pairs are the two halves of the head dimension (the "rotate_half" layout of Llama in ``transformers``),
so weights move between the two without permutation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pretrain.model.config import ModelConfig, RopeScalingConfig


def _base_inv_freq(dim: int, theta: float | torch.Tensor) -> torch.Tensor:
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def yarn_attention_factor(scaling: RopeScalingConfig) -> float:
    """YaRN's cos/sin multiplier: the configured one, else 0.1 ln s + 1 (1 when s <= 1)."""
    if scaling.attn_factor:
        return scaling.attn_factor
    return 1.0 if scaling.factor <= 1 else 0.1 * math.log(scaling.factor) + 1.0


def rope_frequencies(
    head_dim: int, theta: float, scaling: RopeScalingConfig, original_max_position: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies [head_dim/2] (float32) and the attention factor applied to cos and sin.

    ``seq_len`` matters only for dynamic NTK: the longest position + 1 the frequencies must cover.
    """
    kind, s, orig = scaling.type, scaling.factor, original_max_position
    if kind == "none":
        return _base_inv_freq(head_dim, theta), 1.0
    if kind == "linear":
        return _base_inv_freq(head_dim, theta) / s, 1.0
    if kind == "dynamic":
        # Grow the base so the lowest frequency still spans seq_len; unchanged up to the original context.
        length = max(seq_len or orig, orig)
        base = theta * ((s * length / orig) - (s - 1)) ** (head_dim / (head_dim - 2))
        return _base_inv_freq(head_dim, base), 1.0
    if kind == "yarn":
        return _yarn_inv_freq(head_dim, theta, scaling, orig), yarn_attention_factor(scaling)
    if kind == "llama3":
        return _llama3_inv_freq(head_dim, theta, scaling, orig), 1.0
    raise ValueError(f"config field 'model.rope_scaling.type': unknown RoPE scaling {kind!r}")


def _yarn_inv_freq(dim: int, theta: float, scaling: RopeScalingConfig, orig: int) -> torch.Tensor:
    def correction_dim(rotations: float) -> float:
        # The channel pair index whose wavelength fits `rotations` times into the original context.
        return (dim * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(scaling.beta_fast)), 0)
    high = min(math.ceil(correction_dim(scaling.beta_slow)), dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero in the ramp
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
    extrapolated = 1.0 / pos_freqs  # unchanged (high frequencies)
    interpolated = 1.0 / (scaling.factor * pos_freqs)  # position interpolation (low frequencies)
    keep = 1 - ramp
    return interpolated * (1 - keep) + extrapolated * keep


def _llama3_inv_freq(dim: int, theta: float, scaling: RopeScalingConfig, orig: int) -> torch.Tensor:
    inv_freq = _base_inv_freq(dim, theta)
    s, lo, hi = scaling.factor, scaling.low_freq_factor, scaling.high_freq_factor
    low_freq_wavelen, high_freq_wavelen = orig / lo, orig / hi
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / s, inv_freq)
    smooth = (orig / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / s + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables [positions, head_dim] (grown on demand), looked up per forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.head_dim = cfg.head_dim
        self.theta = cfg.rope_theta
        self.scaling = cfg.rope_scaling
        self.original = cfg.rope_original_max_position
        inv_freq, self.attn_factor = rope_frequencies(self.head_dim, self.theta, self.scaling, self.original)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # Long-context configs (Llama 3: 131072) would make big tables; precompute a window and grow on demand.
        length = min(cfg.max_seq_len, 8192)
        self.register_buffer("cos", torch.empty(0), persistent=False)
        self.register_buffer("sin", torch.empty(0), persistent=False)
        self._build(length)

    def _table(self, inv_freq: torch.Tensor, length: int, attn_factor: float) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(length, device=inv_freq.device, dtype=torch.float32)
        freqs = torch.outer(pos, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # both halves of the head use the same angle
        return emb.cos() * attn_factor, emb.sin() * attn_factor

    def _build(self, length: int) -> None:
        # Recomputed in fp32 rather than read from the buffer, which model.to(bfloat16) would have rounded.
        inv_freq, _ = rope_frequencies(self.head_dim, self.theta, self.scaling, self.original)
        self.cos, self.sin = self._table(inv_freq.to(self.inv_freq.device), length, self.attn_factor)

    def forward(self, seq_len: int, offset: int = 0, position_ids: torch.Tensor | None = None):
        """cos, sin shaped [1 or B, 1, T, head_dim] for positions offset..offset+T-1 (or position_ids)."""
        end = int(position_ids.max()) + 1 if position_ids is not None else offset + seq_len
        if self.scaling.type == "dynamic" and end > self.original:
            # Dynamic NTK recomputes the frequencies for the current length (like transformers does).
            inv_freq, _ = rope_frequencies(self.head_dim, self.theta, self.scaling, self.original, seq_len=end)
            cos, sin = self._table(inv_freq.to(self.inv_freq.device), end, 1.0)
        else:
            if end > self.cos.shape[0] or self.cos.dtype != torch.float32:
                self._build(max(end, 2 * self.cos.shape[0]))
            cos, sin = self.cos, self.sin
        if position_ids is not None:
            return cos[position_ids].unsqueeze(1), sin[position_ids].unsqueeze(1)
        return cos[offset : offset + seq_len][None, None], sin[offset : offset + seq_len][None, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, T, head_dim] by the angles in cos/sin (computed in x's dtype)."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)
