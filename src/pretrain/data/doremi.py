"""DoReMi: domain weights learned with a small proxy model (Xie et al. 2023, "DoReMi: Optimizing Data
Mixtures Speeds Up Language Model Pretraining", Algorithm 1).

1. Train a small *reference* model on the current mixture (the run's ``data.mixture`` at progress 0).
2. Train a *proxy* model of the same shape with Group DRO over domains. Each step samples a batch with
   uniform domain weights and computes, per domain i, the *excess loss* over the reference model,
   ``lambda_i = sum_tokens max(loss_proxy - loss_ref, 0) / tokens_i``. The domain weights follow
   exponentiated gradient ascent, ``alpha <- alpha * exp(eta * lambda)``, renormalised and smoothed with
   the uniform distribution (``c = 1e-3``), and the proxy minimises ``sum_i alpha_i * mean_loss_i``.
3. The learned mixture is the average of alpha over the proxy's training steps.

Domains where the proxy lags the reference most (learnable but not yet learned) gain weight; domains
that are already easy or hopelessly noisy (excess loss ~ 0) lose it. Output: ``weights.json`` (averaged
and final weights, reference weights, the whole trajectory) and ``weights.png`` (trajectory plot).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pretrain.configlib import check, validate
from pretrain.data.loader import IGNORE, Batch, PackedLoader
from pretrain.data.loader_config import LoaderConfig, MixtureConfig
from pretrain.data.mixture import Mixture
from pretrain.data.shards import load_split


@dataclass
class DoReMiConfig:
    steps: int = 200
    """Training steps of the reference model and of the proxy model (each)."""
    lr: float = 0.0
    """AdamW learning rate of both models (0 = the run's train.lr, which `pretrain mixture doremi` fills in)."""
    eta: float = 1.0
    """Step size of the exponentiated-gradient update of the domain weights (the paper uses 1)."""
    smoothing: float = 1e-3
    """Mix of the uniform distribution into the weights each step (the paper's c = 1e-3)."""
    seq_len: int = 0
    """Sequence length (0 = the run's train.seq_len, filled in the same way)."""
    micro_batch: int = 0
    """Rows per step (0 = the run's train.micro_batch, filled in the same way)."""
    seed: int = 0
    """Seed of both models' initialisation and of the data order."""

    def validate(self) -> None:
        check(self.steps >= 1, "steps", f"must be >= 1 (got {self.steps})")
        check(self.eta > 0, "eta", f"must be > 0 (got {self.eta})")
        check(0.0 <= self.smoothing <= 1.0, "smoothing", f"must be in [0, 1] (got {self.smoothing})")


def update_weights(alpha: torch.Tensor, excess: torch.Tensor, eta: float, smoothing: float) -> torch.Tensor:
    """One DoReMi step: exponentiated gradient ascent on the excess losses, renormalised and smoothed."""
    k = len(alpha)
    alpha = torch.softmax(torch.log(alpha) + eta * excess, dim=0)  # alpha * exp(eta * excess), normalised, in log space
    return (1 - smoothing) * alpha + smoothing / k


def _per_token_loss(model, batch: Batch) -> torch.Tensor:
    """[B, T] cross-entropy per position (0 where the target is ignored)."""
    out = model(batch.input_ids, doc_ids=batch.doc_ids)
    logits = out.logits.float()
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), batch.targets.reshape(-1), ignore_index=IGNORE,
                           reduction="none")
    return loss.view(batch.targets.shape)


def _domain_rows(batch: Batch, domains: list[str]) -> torch.Tensor:
    """[K, B] one-hot: which rows belong to which domain."""
    idx = torch.tensor([domains.index(d) for d in batch.domains])
    return F.one_hot(idx, len(domains)).T.float()


def _make_model(model_cfg, vocab_size: int, seed: int):
    import copy

    from pretrain.model import Transformer

    mcfg = copy.deepcopy(model_cfg)
    mcfg.vocab_size = vocab_size
    torch.manual_seed(seed)
    return Transformer(mcfg)


@dataclass
class _Setup:
    """What both DoReMi models train with: the shards, sizes, learning rate and its schedule."""

    model_cfg: object
    """The model shape (a pretrain.model.ModelConfig)."""
    tokenizer: object
    shards: dict
    domains: list[str]
    seq_len: int
    micro_batch: int
    lr: float
    steps: int

    def loader(self, mix: Mixture, seed: int) -> PackedLoader:
        return PackedLoader(self.shards, self.seq_len, self.micro_batch, mix, LoaderConfig(lineage=False),
                            self.tokenizer, seed=seed)

    def optimizer(self, model) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=self.lr, betas=(0.9, 0.95), weight_decay=0.1)

    def lr_at(self, step: int) -> float:  # short warmup then cosine, as in the paper's proxy runs
        lr, warm = self.lr, max(1, self.steps // 20)
        if step < warm:
            return lr * (step + 1) / warm
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, self.steps - warm))))

    def model(self, seed: int):
        return _make_model(self.model_cfg, self.tokenizer.vocab_size, seed)


def run_doremi(model_cfg, tokens_dir: str | Path, out_dir: str | Path, dcfg: DoReMiConfig | None = None,
               tokenizer=None, mixture: MixtureConfig | None = None) -> dict:
    """Run DoReMi on the train shards of ``tokens_dir`` with model shape ``model_cfg`` (a ModelConfig).

    ``tokenizer``: the tokenizer (or its path); default: ``<tokens_dir>/../tokenizer``. ``mixture``: the
    reference mixture (the run's data.mixture; default: the MixtureConfig defaults). ``dcfg`` must name
    lr, seq_len and micro_batch (the CLI fills them from the run's train section).
    Writes ``out_dir/weights.json`` and ``out_dir/weights.png``.
    """
    from pretrain.tokenizer import Tokenizer, load_tokenizer

    dcfg = dcfg or DoReMiConfig()
    validate(dcfg, "doremi")
    for name in ("lr", "seq_len", "micro_batch"):
        check(getattr(dcfg, name) > 0, f"doremi.{name}", f"is 0: set it (`pretrain mixture doremi` takes the run's train.{name})")
    tokens_dir = Path(tokens_dir)
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = load_tokenizer(tokenizer or tokens_dir.parent / "tokenizer")
    shards = load_split(tokens_dir, "train", tokenizer.hash)
    domains = sorted(shards)
    if len(domains) < 2:
        raise ValueError(f"{tokens_dir}/train: DoReMi needs at least two domains (found {domains})")
    counts = {d: s.num_tokens for d, s in shards.items()}
    run = _Setup(model_cfg, tokenizer, shards, domains, dcfg.seq_len, dcfg.micro_batch, dcfg.lr, dcfg.steps)
    ref_mix = Mixture(mixture or MixtureConfig(), counts)
    ref, ref_losses = _train_reference(run, ref_mix, dcfg.seed)
    uniform_mix = Mixture(MixtureConfig(weights={d: 1.0 for d in domains}), counts)
    proxy, hist = _train_proxy(run, ref, uniform_mix, dcfg)

    traj = np.asarray(hist["trajectory"])
    averaged = traj.mean(axis=0)
    result = {
        "weights": {d: float(w) for d, w in zip(domains, averaged, strict=True)},
        "final_weights": {d: float(w) for d, w in zip(domains, traj[-1], strict=True)},
        "reference_weights": ref_mix.weights_at(0.0),
        "domains": domains,
        "trajectory": hist["trajectory"],
        "excess_loss": hist["excess_loss"],
        "reference_loss": ref_losses,
        "proxy_loss": hist["proxy_loss"],
        "config": {"steps": dcfg.steps, "eta": dcfg.eta, "smoothing": dcfg.smoothing, "lr": run.lr,
                   "seq_len": run.seq_len, "micro_batch": run.micro_batch, "model_params": proxy.num_params()},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    _plot(traj, domains, out / "weights.png")
    return result


def _train_reference(run: _Setup, mix: Mixture, seed: int) -> tuple[torch.nn.Module, list[float]]:
    """Step 1: the reference model, trained on the current mixture; returned in eval mode with its losses."""
    ref = run.model(seed)
    opt = run.optimizer(ref)
    data = run.loader(mix, seed)
    losses = []
    for step in range(run.steps):
        batch = data.next_batch()
        for g in opt.param_groups:
            g["lr"] = run.lr_at(step)
        out = ref(batch.input_ids, batch.targets, batch.doc_ids)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()
        losses.append(float(out.loss.detach()))
    ref.eval()
    return ref, losses


def _train_proxy(run: _Setup, ref, mix: Mixture, dcfg: DoReMiConfig) -> tuple[torch.nn.Module, dict[str, list]]:
    """Step 2: the proxy model with Group DRO over domains (Algorithm 1); returns it and the per-step
    domain weights (``trajectory``), excess losses and proxy losses."""
    proxy = run.model(dcfg.seed + 1)
    opt = run.optimizer(proxy)
    data = run.loader(mix, dcfg.seed + 1)
    k = len(run.domains)
    alpha = torch.full((k,), 1.0 / k)
    hist: dict[str, list] = {"trajectory": [], "excess_loss": [], "proxy_loss": []}
    for step in range(run.steps):
        batch = data.next_batch()
        for g in opt.param_groups:
            g["lr"] = run.lr_at(step)
        rows = _domain_rows(batch, run.domains)  # [K, B]
        valid = (batch.targets != IGNORE).float()  # [B, T]
        tokens_per_domain = rows @ valid.sum(dim=1)  # [K]
        with torch.no_grad():
            ref_loss = _per_token_loss(ref, batch)
        loss = _per_token_loss(proxy, batch)
        with torch.no_grad():
            excess = ((loss - ref_loss).clamp(min=0) * valid).sum(dim=1)  # [B]
            lam = (rows @ excess) / tokens_per_domain.clamp(min=1)  # [K]; 0 for domains absent from the batch
            alpha = update_weights(alpha, lam, dcfg.eta, dcfg.smoothing)
        domain_loss = (rows @ (loss * valid).sum(dim=1)) / tokens_per_domain.clamp(min=1)  # [K]
        objective = (alpha * domain_loss).sum()
        opt.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(proxy.parameters(), 1.0)
        opt.step()
        hist["trajectory"].append(alpha.tolist())
        hist["excess_loss"].append(lam.tolist())
        hist["proxy_loss"].append(float((loss.detach() * valid).sum() / valid.sum().clamp(min=1)))
    return proxy, hist


def _plot(traj: np.ndarray, domains: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, d in enumerate(domains):
        ax.plot(np.arange(1, len(traj) + 1), traj[:, i], label=d)
    ax.set_xlabel("proxy step")
    ax.set_ylabel("domain weight")
    ax.set_title("DoReMi domain weights (Group DRO)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
