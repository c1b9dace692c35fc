"""Optimizers: AdamW with parameter groups, and Muon for the blocks' weight matrices.

Weight decay is applied to the 2-D weight matrices of linear layers only; norms (gains), biases and
embeddings are not decayed by default (GPT-2/nanoGPT and Llama practice: decaying a gain pulls it towards
zero, not towards its identity value 1). Each group keeps its peak learning rate in ``group["peak_lr"]``
so the schedule multiplies a factor in, whatever the group.

Muon (pretrain.train.muon) orthogonalises the momentum of each block weight matrix; embeddings, the
output head and 1-D parameters stay on AdamW.

Optimizers are registered by name (``OPTIMIZERS``; ``train.optimizer`` picks one), each with a small
config of its own read from the train config (``AdamWConfig``, ``MuonConfig``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pretrain.train.config import TrainConfig
from pretrain.train.muon import Muon


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
    """Split trainable parameters into decay / no_decay (and muon when that optimizer is chosen); with
    train.embed_lr / train.head_lr set, the embedding tables / the untied output head get groups of
    their own ("embed", "head") that run at those learning rates (nanochat's split)."""
    emb, head = _embedding_params(model)
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"decay": [], "no_decay": [], "muon": [], "embed": [],
                                                         "head": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))  # tied weights appear once
        is_emb = id(p) in emb
        matrix = p.ndim >= 2 and not is_emb
        if is_emb and tcfg.embed_lr:  # a tied head is the embedding, so it goes with the embeddings
            groups["embed"].append((name, p))
        elif id(p) in head and tcfg.head_lr:
            groups["head"].append((name, p))
        elif OPTIMIZERS[tcfg.optimizer].matrices and matrix and id(p) not in head and p.ndim == 2:
            groups["muon"].append((name, p))
        elif matrix or (is_emb and tcfg.decay_embeddings):
            groups["decay"].append((name, p))
        else:
            groups["no_decay"].append((name, p))
    return groups


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


@dataclass
class AdamWConfig:
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float

    @classmethod
    def from_train(cls, t: TrainConfig) -> AdamWConfig:
        return cls(t.lr, (t.beta1, t.beta2), t.eps, t.weight_decay)


@dataclass
class MuonConfig:
    lr: float
    momentum: float
    weight_decay: float
    ns_steps: int = 5
    ns: str = "quintic"
    beta2: float = 0.0
    cautious: bool = False
    compile: bool = False
    """Compile the batched update (with the model: ``train.compile``)."""

    @classmethod
    def from_train(cls, t: TrainConfig) -> MuonConfig:
        return cls(t.muon_lr, t.muon_momentum, t.weight_decay, ns=t.muon_ns, beta2=t.muon_beta2,
                   cautious=t.muon_cautious_wd, compile=t.compile)


def _adamw(groups: dict, t: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW on the decay / no_decay / embed / head groups."""
    c = AdamWConfig.from_train(t)
    names = ("decay", "no_decay", "embed", "head")
    params = [p for name in names for _, p in groups.get(name, [])]
    # Fused: one kernel per group on CUDA and on CPU (torch >= 2.4; ~3x faster than foreach on CPU).
    kw = {"fused": True} if params and all(p.device.type in ("cuda", "cpu") for p in params) else {"foreach": True}
    embed_wd = c.weight_decay if t.decay_embeddings else 0.0
    adam_groups = [  # (name, weight decay, peak LR)
        {"name": "decay", "weight_decay": c.weight_decay, "peak_lr": c.lr},
        {"name": "no_decay", "weight_decay": 0.0, "peak_lr": c.lr},
        {"name": "embed", "weight_decay": embed_wd, "peak_lr": t.embed_lr or c.lr},
        {"name": "head", "weight_decay": c.weight_decay, "peak_lr": t.head_lr or c.lr},
    ]
    adam_groups = [dict(g, params=[p for _, p in groups.get(g["name"], [])], lr=g["peak_lr"]) for g in adam_groups]
    adam_groups = [g for g in adam_groups if g["params"]]
    return [torch.optim.AdamW(adam_groups, lr=c.lr, betas=c.betas, eps=c.eps, **kw)] if adam_groups else []


def _muon(groups: dict, t: TrainConfig) -> list[torch.optim.Optimizer]:
    c = MuonConfig.from_train(t)
    opts = _adamw(groups, t)
    if groups["muon"]:
        opts.append(Muon([{"params": [p for _, p in groups["muon"]], "peak_lr": c.lr, "name": "muon"}],
                         lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, ns_steps=c.ns_steps,
                         ns=c.ns, beta2=c.beta2, cautious=c.cautious, compile=c.compile))
    return opts


@dataclass
class OptimizerSpec:
    build: Callable[[dict, TrainConfig], list[torch.optim.Optimizer]]
    """(parameter groups from param_groups(), train config) -> the optimizers to step together."""
    matrices: bool = False
    """2-D weight matrices of the blocks go to their own "muon" group instead of "decay"."""


OPTIMIZERS: dict[str, OptimizerSpec] = {"adamw": OptimizerSpec(_adamw), "muon": OptimizerSpec(_muon, matrices=True)}


def register_optimizer(name: str, spec: OptimizerSpec) -> None:
    OPTIMIZERS[name] = spec


def build_optimizer(model: nn.Module, tcfg: TrainConfig) -> OptimizerSet:
    if tcfg.optimizer not in OPTIMIZERS:
        from pretrain.configlib import ConfigError

        raise ConfigError("train.optimizer", f"unknown optimizer {tcfg.optimizer!r} (known: {', '.join(OPTIMIZERS)})")
    return OptimizerSet(OPTIMIZERS[tcfg.optimizer].build(param_groups(model, tcfg), tcfg))
