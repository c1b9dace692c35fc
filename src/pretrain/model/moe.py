"""Mixture-of-experts feed-forward with top-k routing, shared experts and three ways to keep load balanced.

Routing (per token): affinities s = sigmoid(router(x)) (DeepSeek-V3) or softmax(router(x)) (Switch,
Mixtral); the top_k experts by s (+ a per-expert bias under auxiliary-loss-free balancing) are chosen,
and their outputs are mixed with the chosen s renormalised to sum to 1. Shared experts (DeepSeek-MoE,
Dai et al. 2024) see every token. No token is dropped (no capacity factor).

Balancing:
- ``aux_loss``: the Switch Transformer / GShard auxiliary loss (Fedus et al. 2021; Lepikhin et al. 2020),
  coef * sum_i f_i P_i with f_i = E / (k N) * tokens routed to i and P_i the mean routing probability.
  It is 1 * coef at perfect balance.
- ``aux_free``: DeepSeek-V3's auxiliary-loss-free balancing (Wang et al. 2024, "Auxiliary-Loss-Free Load
  Balancing Strategy for Mixture-of-Experts"): a bias b_i, used only to choose experts, moves by
  gamma * sign(mean load - load_i) after every optimizer step (``update_router_biases``).
- ``seq_aux_alpha``: DeepSeek-V3's complementary sequence-wise balance loss (the same f*P sum computed
  inside each sequence), small (alpha ~ 1e-4), usable with either.
- ``z_loss_coef``: the router z-loss of ST-MoE (Zoph et al. 2022), mean(logsumexp(logits)^2).

``dense_forward`` runs every expert on every token and mixes with the same gates: a slow, obviously
correct reference the tests compare the sparse dispatch with.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pretrain.model.config import ModelConfig
from pretrain.model.layers import PlainMLP, SwiGLU


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m = cfg.moe
        self.n_experts, self.top_k, self.balance = m.n_experts, m.top_k, m.balance
        self.score, self.cfg = m.router_score, m
        hidden = cfg.expert_hidden_dim
        self.router = nn.Linear(cfg.dim, m.n_experts, bias=False)
        ffn = {"bias": cfg.mlp_bias, "activation": cfg.activation}
        mlp = SwiGLU if cfg.mlp_gated else PlainMLP  # experts take the dense layers' feed-forward shape
        self.experts = nn.ModuleList(mlp(cfg.dim, hidden, **ffn) for _ in range(m.n_experts))
        # n_shared shared experts are one expert n_shared times as wide (their outputs simply add up).
        self.shared = mlp(cfg.dim, hidden * m.n_shared, **ffn) if m.n_shared else None
        # Auxiliary-loss-free bias: saved with the model, never trained by gradients.
        self.register_buffer("router_bias", torch.zeros(m.n_experts, dtype=torch.float32))
        # Tokens routed to each expert since the last bias update (training forwards only). A plain tensor,
        # not a buffer: DDP would overwrite every rank's counts with rank 0's at each forward.
        self.load = torch.zeros(m.n_experts, dtype=torch.float32)
        self.last_counts: torch.Tensor | None = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, dim] -> router logits [N, E] (fp32), affinities [N, E], chosen experts [N, k], gates [N, k]."""
        with torch.autocast(x.device.type, enabled=False):  # route in fp32 even under bf16 autocast
            logits = F.linear(x.float(), self.router.weight.float())
        scores = logits.sigmoid() if self.score == "sigmoid" else logits.softmax(dim=-1)
        choice = scores + self.router_bias if self.balance == "aux_free" else scores
        idx = choice.topk(self.top_k, dim=-1).indices
        gates = scores.gather(1, idx)
        gates = gates / (gates.sum(dim=-1, keepdim=True) + 1e-20)
        return logits, scores, idx, gates

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, dim] -> (output [B, T, dim], weighted balance loss scalar)."""
        B, T, D = x.shape
        flat = x.reshape(-1, D)
        logits, scores, idx, gates = self.route(flat)
        counts = torch.bincount(idx.flatten(), minlength=self.n_experts)
        y = self._dispatch(flat, idx, gates.to(x.dtype), counts)
        if self.shared is not None:
            y = y + self.shared(flat)
        with torch.no_grad():
            self.last_counts = counts.detach()
            if self.training:
                if self.load.device != counts.device:
                    self.load = self.load.to(counts.device)
                self.load += counts.float()
        return y.view(B, T, D), self._balance_loss(logits, scores, idx, counts, B, T)

    def _dispatch(self, flat: torch.Tensor, idx: torch.Tensor, gates: torch.Tensor, counts: torch.Tensor):
        """Sort (token, expert) pairs by expert, run each expert on its contiguous slice, scatter back."""
        order = idx.flatten().argsort(stable=True)
        token = order // self.top_k
        # The one host sync of a MoE layer: the slice sizes (a grouped GEMM would avoid it).
        chunks = flat[token].split(counts.tolist())
        out = torch.cat([expert(chunk) for expert, chunk in zip(self.experts, chunks, strict=True)])
        out = out * gates.flatten()[order, None]
        return torch.zeros_like(flat).index_add_(0, token, out)

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference: every expert on every token, mixed by a dense [N, E] gate matrix (for tests)."""
        B, T, D = x.shape
        flat = x.reshape(-1, D)
        _, _, idx, gates = self.route(flat)
        dense_gates = torch.zeros(flat.shape[0], self.n_experts, dtype=x.dtype, device=x.device)
        dense_gates.scatter_(1, idx, gates.to(x.dtype))
        y = sum(dense_gates[:, e, None] * expert(flat) for e, expert in enumerate(self.experts))
        if self.shared is not None:
            y = y + self.shared(flat)
        return y.view(B, T, D)

    def _balance_loss(self, logits, scores, idx, counts, B: int, T: int) -> torch.Tensor:
        E, k = self.n_experts, self.top_k
        loss = logits.new_zeros(())
        probs = scores / scores.sum(dim=-1, keepdim=True)  # sigmoid affinities normalised like DeepSeek-V3
        if self.balance == "aux_loss" and self.cfg.aux_loss_coef > 0:
            f = counts.float() * E / (k * idx.shape[0])
            loss = loss + self.cfg.aux_loss_coef * (f * probs.mean(dim=0)).sum()
        if self.cfg.seq_aux_alpha > 0:
            onehot = torch.zeros(B, T * k, E, device=logits.device).scatter_(2, idx.view(B, T * k, 1), 1.0)
            f_seq = onehot.sum(dim=1) * E / (k * T)  # [B, E]
            p_seq = probs.view(B, T, E).mean(dim=1)
            loss = loss + self.cfg.seq_aux_alpha * (f_seq * p_seq).sum(dim=-1).mean()
        if self.cfg.z_loss_coef > 0:
            loss = loss + self.cfg.z_loss_coef * torch.logsumexp(logits, dim=-1).square().mean()
        return loss

    @torch.no_grad()
    def update_router_biases(self) -> None:
        """Auxiliary-loss-free step: b_i += gamma * sign(mean load - load_i); then reset the load counter."""
        load = self.load.clone()
        self.load.zero_()
        if self.balance != "aux_free":
            return
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(load)  # every rank must apply the same update
        # No update without load (no training step since the last one); a mask, not an ``if``, which
        # would read the sum back to the host every step.
        self.router_bias += self.cfg.bias_update_speed * torch.sign(load.mean() - load) * (load.sum() > 0)


def max_violation(counts: torch.Tensor) -> torch.Tensor:
    """MaxVio (Wang et al. 2024): (max load - mean load) / mean load; 0 is perfect balance. A device
    scalar: the trainer reads it back on logged steps only."""
    counts = counts.float()
    mean = counts.mean()
    return torch.where(mean > 0, (counts.max() - mean) / mean.clamp(min=1e-20), torch.zeros_like(mean))
