"""One decoder block (attention + feed-forward with the norms where ``norm_placement`` puts them), and
DeepSeek-V3's multi-token-prediction module built around one."""

from __future__ import annotations

import torch
from torch import nn

from pretrain.model.attention import Attention
from pretrain.model.config import ModelConfig
from pretrain.model.layers import PlainMLP, RMSNorm, SwiGLU
from pretrain.model.moe import MoE


def make_norm(cfg: ModelConfig) -> RMSNorm:
    return RMSNorm(cfg.dim, cfg.norm_eps, cfg.norm_unit_offset)


class Block(nn.Module):
    """Residual block, x + attn(...), then x + ffn(...), with the norms where ``norm_placement`` puts them:
    pre (Llama: f(norm(x))), post (OLMo 2: norm(f(x)), which keeps the residual stream un-normalised
    yet bounds each update), sandwich (Gemma 2/3: norm(f(norm(x))))."""

    def __init__(self, cfg: ModelConfig, layer: int, cache_index: int, moe: bool):
        super().__init__()
        pre, post = cfg.norm_placement in ("pre", "sandwich"), cfg.norm_placement in ("post", "sandwich")
        # A missing norm is an Identity, so the state dict holds exactly the norms the placement uses.
        self.attn_norm = make_norm(cfg) if pre else nn.Identity()
        self.attn = Attention(cfg, layer, cache_index)
        self.attn_post_norm = make_norm(cfg) if post else nn.Identity()
        self.ffn_norm = make_norm(cfg) if pre else nn.Identity()
        if moe:
            self.ffn = MoE(cfg)
        else:
            mlp = SwiGLU if cfg.mlp_gated else PlainMLP
            self.ffn = mlp(cfg.dim, cfg.hidden_dim, cfg.mlp_bias, cfg.activation)
        self.ffn_post_norm = make_norm(cfg) if post else nn.Identity()

    def forward(self, x, cos, sin, plan, cache=None, input_ids=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.attn_post_norm(self.attn(self.attn_norm(x), cos, sin, plan, cache, input_ids))
        h = self.ffn_norm(x)
        h, aux = self.ffn(h) if isinstance(self.ffn, MoE) else (self.ffn(h), None)
        return x + self.ffn_post_norm(h), aux


class MTPModule(nn.Module):
    """DeepSeek-V3 MTP module k: h^k_i = Block(W [norm(h^{k-1}_i); norm(emb(t_{i+k}))]); predicts t_{i+k+1}.

    Embedding and LM head are the main model's; each module has its own projection, block and output norm.
    """

    def __init__(self, cfg: ModelConfig, index: int):
        super().__init__()
        self.hidden_norm = make_norm(cfg)
        self.embed_norm = make_norm(cfg)
        self.proj = nn.Linear(2 * cfg.dim, cfg.dim, bias=False)
        self.block = Block(cfg, cfg.n_layers + index, cache_index=index, moe=cfg.is_moe_layer(cfg.n_layers - 1))
        self.norm = make_norm(cfg)

    def forward(self, h, emb, rope, plan, cache=None):
        """``rope``: the model's {kind: (cos, sin)} tables; the block's attention picks its own."""
        x = self.proj(torch.cat([self.hidden_norm(h), self.embed_norm(emb)], dim=-1))
        return self.block(x, *rope[self.block.attn.rope], plan, cache)


def shift_left(x: torch.Tensor, k: int, fill: int) -> torch.Tensor:
    """x[:, i + k] at position i; the last k positions get ``fill``."""
    out = torch.full_like(x, fill)
    out[:, :-k] = x[:, k:]
    return out
