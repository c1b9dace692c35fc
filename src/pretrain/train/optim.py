"""Optimizers: AdamW with parameter groups, and Muon for the blocks' weight matrices.

Weight decay is applied to the 2-D weight matrices of linear layers only; norms (gains), biases and
embeddings are not decayed by default (GPT-2/nanoGPT and Llama practice: decaying a gain pulls it towards
zero, not towards its identity value 1). Each group keeps its peak learning rate in ``group["peak_lr"]``
so the schedule multiplies a factor in, whatever the group.

Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers"; Liu et al. 2025 "Muon is scalable")
orthogonalises the momentum of each weight matrix with a quintic Newton-Schulz iteration; embeddings,
the output head and 1-D parameters stay on AdamW.
"""

from __future__ import annotations

import torch
from torch import nn

from pretrain.train.config import TrainConfig


def _embedding_params(model: nn.Module) -> tuple[set[int], set[int]]:
    """ids of embedding weights, and of output-head weights (a Linear whose rows are the vocabulary)."""
    emb, head = set(), set()
    vocab_sizes = set()
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            emb.add(id(m.weight))
            vocab_sizes.add(m.num_embeddings)
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features in vocab_sizes:
            head.add(id(m.weight))
    return emb, head


def param_groups(model: nn.Module, tcfg: TrainConfig) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Split trainable parameters into decay / no_decay (and muon when that optimizer is chosen)."""
    emb, head = _embedding_params(model)
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"decay": [], "no_decay": [], "muon": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))  # tied weights appear once
        is_emb = id(p) in emb
        matrix = p.ndim >= 2 and not is_emb
        if tcfg.optimizer == "muon" and matrix and id(p) not in head and p.ndim == 2:
            groups["muon"].append((name, p))
        elif matrix or (is_emb and tcfg.decay_embeddings):
            groups["decay"].append((name, p))
        else:
            groups["no_decay"].append((name, p))
    return groups


def _zeropower_newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximate U V^T of g = U S V^T with the quintic iteration of Jordan et al. (coefficients theirs)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(torch.bfloat16) if g.is_cuda else g.float()
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.mT
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm <= 1, inside the iteration's basin
    for _ in range(steps):
        m = x @ x.mT
        x = a * x + (b * m + c * m @ m) @ x
    if transposed:
        x = x.mT
    return x.to(g.dtype)


class Muon(torch.optim.Optimizer):
    """SGD-momentum (Nesterov) whose update is orthogonalised; for 2-D weight matrices only."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0, ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(mom).add_(p.grad)
                update = p.grad.add(buf, alpha=mom)  # Nesterov
                update = _zeropower_newton_schulz(update, group["ns_steps"])
                # Match the RMS of the update across shapes (Jordan et al.'s max(1, rows/cols)^0.5).
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                if wd:
                    p.mul_(1.0 - lr * wd)
                p.add_(update, alpha=-lr * scale)
        return loss


class OptimizerSet:
    """One or two optimizers stepped together, with a single state_dict and LR setter."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def set_lr_factor(self, factor: float) -> None:
        for g in self.param_groups:
            g["lr"] = g["peak_lr"] * factor

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {str(i): o.state_dict() for i, o in enumerate(self.optimizers)}

    def load_state_dict(self, state: dict) -> None:
        if len(state) != len(self.optimizers):
            raise ValueError(f"checkpoint holds {len(state)} optimizer(s), this run has {len(self.optimizers)}")
        for i, o in enumerate(self.optimizers):
            o.load_state_dict(state[str(i)])


def build_optimizer(model: nn.Module, tcfg: TrainConfig) -> OptimizerSet:
    groups = param_groups(model, tcfg)
    params = [p for _, p in groups["decay"] + groups["no_decay"]]
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    from torch.distributed.tensor import DTensor

    sharded = any(isinstance(p, DTensor) for p in params)
    # fused is fastest on GPU; foreach (multi-tensor) is the CPU fast path; neither handles every DTensor case.
    kw = {"fused": True} if on_cuda and not sharded else {"foreach": True}
    adam_groups = [
        {"params": [p for _, p in groups["decay"]], "weight_decay": tcfg.weight_decay, "name": "decay"},
        {"params": [p for _, p in groups["no_decay"]], "weight_decay": 0.0, "name": "no_decay"},
    ]
    adam_groups = [g for g in adam_groups if g["params"]]
    for g in adam_groups:
        g["peak_lr"] = tcfg.lr
    opts: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(adam_groups, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), eps=tcfg.eps, **kw)
    ]
    if groups["muon"]:
        muon = Muon(
            [{"params": [p for _, p in groups["muon"]], "peak_lr": tcfg.muon_lr, "name": "muon"}],
            lr=tcfg.muon_lr,
            momentum=tcfg.muon_momentum,
            weight_decay=tcfg.weight_decay,
        )
        opts.append(muon)
    return OptimizerSet(opts)
