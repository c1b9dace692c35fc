"""Optimizers as registered configs: AdamW with parameter groups, Muon for the blocks' weight matrices,
and any ``torch.optim.Optimizer`` subclass named by import path.

Weight decay is applied to the 2-D weight matrices of linear layers only; norms (gains), biases and
embeddings are not decayed by default (GPT-2/nanoGPT and Llama practice: decaying a gain pulls it towards
zero, not towards its identity value 1). Each group keeps its peak learning rate in ``group["peak_lr"]``
so the schedule multiplies a factor in, whatever the group.

An optimizer is a config class registered by name (``@OptimizerConfig.register("name")``): its fields
are its own settings (``[train.adamw]``, ``[train.muon]``), ``param_groups`` splits the model's
parameters the way it wants them, ``build`` makes the torch optimizers, and ``callbacks`` adds the loop
callbacks it needs (Muon's momentum schedule). ``train.optimizer = "pkg.mod:Cls"`` uses a
``torch.optim.Optimizer`` subclass from elsewhere with ``train.optimizer_args`` as keyword arguments,
on the AdamW groups (decay / no_decay, embed / head with their learning rates).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn

from pretrain import configlib
from pretrain.configlib import ConfigError, check
from pretrain.train.muon import Muon

if TYPE_CHECKING:
    from pretrain.train.config import TrainConfig

Groups = dict[str, list[tuple[str, nn.Parameter]]]


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


def split_params(model: nn.Module, tcfg: TrainConfig, matrices: str = "") -> Groups:
    """Trainable parameters by group: decay / no_decay; with train.embed_lr / train.head_lr set, the
    embedding tables / the untied output head in groups of their own ("embed", "head", nanochat's split);
    with ``matrices`` named, the blocks' 2-D weight matrices in a group of that name instead of "decay"."""
    emb, head = _embedding_params(model)
    groups: Groups = {"decay": [], "no_decay": [], "embed": [], "head": [], **({matrices: []} if matrices else {})}
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
        elif matrices and matrix and id(p) not in head and p.ndim == 2:
            groups[matrices].append((name, p))
        elif matrix or (is_emb and tcfg.decay_embeddings):
            groups["decay"].append((name, p))
        else:
            groups["no_decay"].append((name, p))
    return groups


def param_groups(model: nn.Module, tcfg: TrainConfig) -> Groups:
    """The chosen optimizer's parameter groups (``train.optimizer``)."""
    return optimizer_config(tcfg).param_groups(model, tcfg)


def adamw_groups(groups: Groups, tcfg: TrainConfig, lr: float) -> list[dict]:
    """torch param groups for decay / no_decay / embed / head, each with its weight decay and peak LR."""
    wd = tcfg.weight_decay
    spec = [("decay", wd, lr), ("no_decay", 0.0, lr), ("embed", wd if tcfg.decay_embeddings else 0.0,
            tcfg.embed_lr or lr), ("head", wd, tcfg.head_lr or lr)]
    out = [{"name": n, "weight_decay": w, "peak_lr": peak, "lr": peak, "params": [p for _, p in groups.get(n, [])]}
           for n, w, peak in spec]
    return [g for g in out if g["params"]]


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
class OptimizerConfig:
    """Base of the optimizer configs. A subclass is a dataclass of the optimizer's own settings,
    registered under the name ``train.optimizer`` gives it."""

    registry: ClassVar[dict[str, type[OptimizerConfig]]] = {}

    @classmethod
    def register(cls, name: str):
        """Class decorator: make the config usable as ``train.optimizer = name``."""
        def add(sub: type[OptimizerConfig]) -> type[OptimizerConfig]:
            cls.registry[name] = sub
            return sub
        return add

    def param_groups(self, model: nn.Module, tcfg: TrainConfig) -> Groups:
        return split_params(model, tcfg)

    def build(self, groups: Groups, tcfg: TrainConfig) -> list[torch.optim.Optimizer]:
        raise NotImplementedError

    def callbacks(self, tcfg: TrainConfig) -> list:
        """Loop callbacks this optimizer needs (pretrain.train.callbacks.Callback instances)."""
        return []


@OptimizerConfig.register("adamw")
@dataclass
class AdamWConfig(OptimizerConfig):
    """AdamW everywhere (peak LR train.lr, decoupled weight decay train.weight_decay)."""

    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    eps: float = 1e-8
    """AdamW epsilon."""

    def validate(self) -> None:
        check(0.0 <= self.beta1 < 1.0, "beta1", f"must be in [0, 1) (got {self.beta1})")
        check(0.0 <= self.beta2 < 1.0, "beta2", f"must be in [0, 1) (got {self.beta2})")
        check(math.isfinite(self.eps) and self.eps > 0, "eps", f"must be > 0 (got {self.eps})")

    def build(self, groups: Groups, tcfg: TrainConfig) -> list[torch.optim.Optimizer]:
        adam = adamw_groups(groups, tcfg, tcfg.lr)
        params = [p for g in adam for p in g["params"]]
        # Fused: one kernel per group on CUDA and on CPU (torch >= 2.4; ~3x faster than foreach on CPU).
        kw = {"fused": True} if params and all(p.device.type in ("cuda", "cpu") for p in params) else {"foreach": True}
        return [torch.optim.AdamW(adam, lr=tcfg.lr, betas=(self.beta1, self.beta2), eps=self.eps, **kw)] if adam else []


@OptimizerConfig.register("muon")
@dataclass
class MuonConfig(OptimizerConfig):
    """Muon for the blocks' 2-D weight matrices (group "muon"); AdamW ([train.adamw]) for the rest."""

    lr: float = 0.02
    """Muon learning rate (peak; follows the same schedule)."""
    momentum: float = 0.95
    """Nesterov momentum (the peak, when the momentum schedule below is on)."""
    momentum_warmup: int = 0
    """Steps over which the momentum rises linearly from momentum_start to momentum (nanochat: 400
    steps from 0.85 to 0.97); 0 = constant from the start."""
    momentum_start: float = 0.85
    """Momentum at step 0 when momentum_warmup > 0."""
    momentum_final: float = 0.0
    """> 0: during the LR decay the momentum falls linearly with the LR to this value (nanochat: 0.90);
    0 = it stays at momentum."""
    ns: Literal["quintic", "polar_express"] = "quintic"
    """The orthogonalising polynomial: Jordan et al.'s quintic, or Polar Express (nanochat's)."""
    ns_steps: int = 5
    """Iterations of the polynomial."""
    beta2: float = 0.0
    """> 0: NorMuon's per-row normalisation of the orthogonalised update with this EMA factor (nanochat:
    0.9); 0 = plain Muon."""
    cautious_wd: bool = False
    """Cautious weight decay: decay only where the update agrees in sign."""

    GROUP: ClassVar[str] = "muon"

    def validate(self) -> None:
        check(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be > 0 (got {self.lr})")
        for name in ("momentum", "momentum_start", "momentum_final", "beta2"):
            v = getattr(self, name)
            check(math.isfinite(v) and 0.0 <= v < 1.0, name, f"must be in [0, 1) (got {v})")
        check(self.momentum_warmup >= 0, "momentum_warmup", "must be >= 0")
        check(self.ns_steps > 0, "ns_steps", "must be > 0")

    def param_groups(self, model: nn.Module, tcfg: TrainConfig) -> Groups:
        return split_params(model, tcfg, matrices=self.GROUP)

    def build(self, groups: Groups, tcfg: TrainConfig) -> list[torch.optim.Optimizer]:
        opts = tcfg.adamw.build(groups, tcfg)
        if groups[self.GROUP]:
            opts.append(Muon([{"params": [p for _, p in groups[self.GROUP]], "peak_lr": self.lr, "name": self.GROUP}],
                             lr=self.lr, momentum=self.momentum, weight_decay=tcfg.weight_decay, ns_steps=self.ns_steps,
                             ns=self.ns, beta2=self.beta2, cautious=self.cautious_wd, compile=tcfg.compile))
        return opts

    def callbacks(self, tcfg: TrainConfig) -> list:
        if self.momentum_warmup <= 0 and self.momentum_final <= 0:
            return []
        from pretrain.train.callbacks.muon_momentum import MuonMomentum

        return [MuonMomentum(self.momentum, self.momentum_start, self.momentum_warmup, self.momentum_final,
                             group=self.GROUP)]


@dataclass
class ImportedOptimizer(OptimizerConfig):
    """``train.optimizer = "pkg.mod:Cls"``: a torch.optim.Optimizer subclass built on the AdamW groups
    with ``train.optimizer_args`` as keyword arguments (``lr``, when given, is the peak LR instead of
    train.lr; weight decay is per group, from train.weight_decay)."""

    spec: str = ""
    kwargs: dict[str, Any] | None = None

    def load(self) -> type[torch.optim.Optimizer]:
        module_name, _, attr = self.spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError("train.optimizer", f"cannot import {module_name!r} for {self.spec!r}: {exc}") from None
        cls = getattr(module, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ConfigError("train.optimizer", f"{self.spec!r} is not a torch.optim.Optimizer subclass")
        return cls

    def build(self, groups: Groups, tcfg: TrainConfig) -> list[torch.optim.Optimizer]:
        cls, kwargs = self.load(), dict(self.kwargs or {})
        lr = float(kwargs.pop("lr", tcfg.lr))
        torch_groups = adamw_groups(groups, tcfg, lr)
        try:
            return [cls(torch_groups, lr=lr, **kwargs)] if torch_groups else []
        except (TypeError, ValueError) as exc:
            raise ConfigError("train.optimizer_args", f"{self.spec}: {exc}") from None


def optimizer_config(tcfg: TrainConfig) -> OptimizerConfig:
    """The config of ``train.optimizer``: its [train.<name>] section, a registered config built from
    train.optimizer_args, or an imported optimizer class."""
    name = tcfg.optimizer
    if ":" in name:
        return ImportedOptimizer(name, tcfg.optimizer_args)
    if name not in OptimizerConfig.registry:
        raise ConfigError("train.optimizer", f"unknown optimizer {name!r} (known: "
                          f"{', '.join(sorted(OptimizerConfig.registry))}, or 'package.module:Class')")
    section = getattr(tcfg, name, None)
    if isinstance(section, OptimizerConfig):
        return section
    cfg = configlib.from_dict(OptimizerConfig.registry[name], tcfg.optimizer_args, "train.optimizer_args")
    configlib.validate(cfg, "train.optimizer_args")
    return cfg


def build_optimizer(model: nn.Module, tcfg: TrainConfig) -> OptimizerSet:
    cfg = optimizer_config(tcfg)
    return OptimizerSet(cfg.build(cfg.param_groups(model, tcfg), tcfg))
