"""Optimizers defined outside the package, as a user would write them: a torch.optim.Optimizer subclass
named by import path (``optkit:SignMomentum``) and a config registered under a name of its own."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pretrain.train.optim import OptimizerConfig, adamw_groups


class SignMomentum(torch.optim.Optimizer):
    """Signed momentum with decoupled weight decay (Lion's update without its interpolation)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(buf.sign(), alpha=-group["lr"])


@OptimizerConfig.register("sign_momentum")
@dataclass
class SignMomentumConfig(OptimizerConfig):
    momentum: float = 0.9

    def build(self, groups, tcfg):
        return [SignMomentum(adamw_groups(groups, tcfg, tcfg.lr), lr=tcfg.lr, momentum=self.momentum)]
