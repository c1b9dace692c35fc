"""Plans: how big a model and how many tokens for a compute budget, for inference too, and how long.

- :func:`compute_optimal`: N_opt, D_opt under C = 6ND from a law's closed form (Hoffmann et al. eq. 4).
- :func:`numeric_optimal`: the same by minimising L(N, C / 6N) numerically (a check of the closed form).
- :func:`inference_optimal`: Sardana et al. 2024 ("Beyond Chinchilla-Optimal"): reach the loss of the
  compute-optimal model at budget C, but minimise training plus lifetime inference FLOPs,
  6 N D_train + 2 N D_inference, which favours smaller models trained on more tokens (as Llama 3 8B
  does at ~1900 tokens per parameter).
- :func:`compute_from_hardware` / :func:`wall_clock_s`: C = accelerators x seconds x peak x MFU.
- :func:`suggest_shape`: a Llama-style (dim, n_layers, n_heads) with about N parameters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy.optimize import minimize_scalar

from pretrain.scaling.laws import ScalingLaw


@dataclass
class Plan:
    params: float
    tokens: float
    compute: float
    loss: float
    law: str

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_param": self.tokens_per_param}


def _check_compute(compute: float) -> None:
    if not (compute > 0 and math.isfinite(compute)):
        raise ValueError(f"compute must be a positive number of FLOPs (got {compute})")


def compute_optimal(law: ScalingLaw, compute: float) -> Plan:
    """The loss-minimising (N, D) with 6ND = C, closed form."""
    _check_compute(compute)
    n, d = law.optimal(compute)
    return Plan(params=n, tokens=d, compute=compute, loss=law.loss(n, d), law=law.name)


def numeric_optimal(law: ScalingLaw, compute: float) -> Plan:
    """Minimise L(N, C / 6N) over log N numerically (no closed form used)."""
    _check_compute(compute)

    def f(log_n: float) -> float:
        n = math.exp(log_n)
        return law.loss(n, compute / (6.0 * n))

    # log N between 1 parameter and C/6 (one token): the minimum is inside for any positive law.
    hi = math.log(compute / 6.0)
    res = minimize_scalar(f, bounds=(0.0, hi), method="bounded", options={"xatol": 1e-10})
    n = math.exp(res.x)
    d = compute / (6.0 * n)
    return Plan(params=n, tokens=d, compute=compute, loss=law.loss(n, d), law=law.name)


@dataclass
class InferencePlan:
    params: float
    tokens: float
    loss: float
    """The quality target: the loss of the compute-optimal model."""
    inference_tokens: float
    training_flops: float
    inference_flops: float
    reference: Plan
    """The compute-optimal plan with the same loss."""

    @property
    def total_flops(self) -> float:
        return self.training_flops + self.inference_flops

    @property
    def reference_total_flops(self) -> float:
        return self.reference.compute + 2.0 * self.reference.params * self.inference_tokens

    def to_dict(self) -> dict:
        return {
            "params": self.params, "tokens": self.tokens, "tokens_per_param": self.tokens / self.params,
            "loss": self.loss, "inference_tokens": self.inference_tokens,
            "training_flops": self.training_flops, "inference_flops": self.inference_flops,
            "total_flops": self.total_flops, "compute_optimal_total_flops": self.reference_total_flops,
            "saving": 1.0 - self.total_flops / self.reference_total_flops,
        }


def tokens_for_loss(law: ScalingLaw, params: float, loss: float) -> float:
    """D such that L(N, D) = loss (inf when N alone cannot reach that loss)."""
    gap = loss - law.E - law.A / params**law.alpha
    if gap <= 0:
        return math.inf
    return (law.B / gap) ** (1.0 / law.beta)


def inference_optimal(law: ScalingLaw, compute: float, inference_tokens: float) -> InferencePlan:
    """Minimise 6 N D + 2 N D_inf subject to L(N, D) = L(compute-optimal model at ``compute``)."""
    if inference_tokens < 0:
        raise ValueError(f"inference tokens must be >= 0 (got {inference_tokens})")
    ref = compute_optimal(law, compute)
    target = ref.loss
    # Smallest N that can reach the target at all (infinite data): A / N^alpha < target - E.
    n_min = (law.A / (target - law.E)) ** (1.0 / law.alpha)

    def total(log_n: float) -> float:
        n = math.exp(log_n)
        d = tokens_for_loss(law, n, target)
        return math.log(6.0 * n * d + 2.0 * n * inference_tokens) if math.isfinite(d) else 1e300

    lo, hi = math.log(n_min) + 1e-9, math.log(ref.params) + 1e-9  # inference never favours a larger model
    res = minimize_scalar(total, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    n = math.exp(res.x)
    d = tokens_for_loss(law, n, target)
    return InferencePlan(
        params=n, tokens=d, loss=target, inference_tokens=inference_tokens,
        training_flops=6.0 * n * d, inference_flops=2.0 * n * inference_tokens, reference=ref,
    )


def peak_flops_for(gpu: str) -> float:
    """Dense bf16 peak FLOP/s of an accelerator named in the trainer's datasheet table (e.g. H100, A100)."""
    from pretrain.train.hardware import GPU_PEAKS

    for key, (low, _fp32) in GPU_PEAKS.items():
        if key.lower() == gpu.lower():
            return low
    raise ValueError(f"unknown GPU {gpu!r}; pass --peak-flops or one of: {', '.join(GPU_PEAKS)}")


def compute_from_hardware(gpus: int, hours: float, mfu: float, peak_flops: float) -> float:
    """Training FLOPs that ``gpus`` accelerators deliver in ``hours`` at utilisation ``mfu``."""
    if gpus <= 0 or hours <= 0 or peak_flops <= 0:
        raise ValueError("gpus, hours and peak FLOP/s must be > 0")
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1] (got {mfu})")
    return gpus * hours * 3600.0 * peak_flops * mfu


def wall_clock_s(compute: float, gpus: int, mfu: float, peak_flops: float) -> float:
    """Seconds to spend ``compute`` FLOPs on ``gpus`` accelerators at utilisation ``mfu``."""
    return compute / compute_from_hardware(gpus, 1.0 / 3600.0, mfu, peak_flops)


@dataclass
class Shape:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    params: int


def family_shape(dim: int) -> tuple[int, int]:
    """(n_heads, n_kv_heads) of the family: head size 64 up to dim 1024, 128 above (as GPT-2 and Llama);
    grouped-query attention with 4 query heads per KV head from dim 2048 (as Llama 3)."""
    head_dim = 64 if dim <= 1024 else 128
    n_heads = max(1, dim // head_dim)
    return n_heads, (max(1, n_heads // 4) if dim >= 2048 else n_heads)


def family_dims(lo: float, hi: float) -> list[int]:
    """Widths of the family between lo and hi: multiples of 64 up to 1024, of 128 up to 2048, then of 512
    (so that the head count is a multiple of the 4 query heads per KV head)."""
    dims = [d for d in range(64, 1025, 64)] + [d for d in range(1152, 2049, 128)] + list(range(2560, 65537, 512))
    return [d for d in dims if lo <= d <= hi] or [min(dims, key=lambda d: abs(math.log(d / max(lo, 1.0))))]


def suggest_shape(params: float, vocab_size: int = 32000, seq_len: int = 2048, aspect: float = 0.0,
                  tie_embeddings: bool = True) -> Shape:
    """A (dim, n_layers) with about ``params`` parameters and dim / n_layers near ``aspect``.

    Kaplan et al. 2020 found loss nearly flat over a wide range of aspect ratios, so the ratio is a
    convention: GPT-2 uses 64 and Llama 2/3 use 100-130; ``aspect=0`` picks 64 below 1B parameters and
    128 above. Among shapes within 10% of the target count, the aspect ratio closest to it wins.
    """
    from pretrain.model.config import ModelConfig

    if params <= 0:
        raise ValueError(f"params must be > 0 (got {params})")
    aspect = aspect or (64.0 if params < 1e9 else 128.0)
    # Dense width: N ~ 12 L d^2 = 12 d^3 / aspect; search widths within 4x of that.
    guess = (params * aspect / 12.0) ** (1.0 / 3.0)
    candidates = []
    for dim in family_dims(guess / 4.0, guess * 4.0):
        heads, kv = family_shape(dim)
        cfgs = [ModelConfig(vocab_size=vocab_size, dim=dim, n_layers=k, n_heads=heads, n_kv_heads=kv,
                            max_seq_len=seq_len, tie_embeddings=tie_embeddings) for k in (1, 2)]
        p1, p2 = (c.num_params() for c in cfgs)
        per_layer, base = p2 - p1, 2 * p1 - p2
        need = (params - base) / per_layer
        for layers in {max(1, math.floor(need)), max(1, math.ceil(need))}:
            total = base + layers * per_layer
            candidates.append((abs(math.log(total / params)), dim, layers, heads, kv, total))
    close = [c for c in candidates if c[0] < math.log(1.1)] or sorted(candidates)[:1]
    best = min(close, key=lambda c: (abs(math.log(c[1] / c[2] / aspect)), c[0]))
    _err, dim, layers, heads, kv, total = best
    return Shape(dim=dim, n_layers=layers, n_heads=heads, n_kv_heads=kv, params=int(total))


def nearest_preset(params: float) -> tuple[str, int] | None:
    """The named preset whose model size is closest to ``params`` (in log space), with its size."""
    from pretrain.model.config import ModelConfig
    from pretrain.presets import PRESETS

    best = None
    for name, p in PRESETS.items():
        model = dict(p.get("model", {}))
        vocab = p.get("tokenizer", {}).get("vocab_size", 0) or 32000
        model.setdefault("vocab_size", vocab)
        try:
            from pretrain.configlib import from_dict

            n = from_dict(ModelConfig, model).num_params()
        except (ValueError, TypeError):
            continue
        score = abs(math.log(n / params))
        if best is None or score < best[0]:
            best = (score, name, n)
    return None if best is None else (best[1], best[2])


def make_plan(
    compute: float = 0.0,
    law: str | ScalingLaw = "epoch",
    gpus: int = 0,
    hours: float = 0.0,
    mfu: float = 0.4,
    gpu: str = "H100",
    peak_flops: float = 0.0,
    inference_tokens: float = 0.0,
    vocab_size: int = 32000,
    seq_len: int = 2048,
) -> dict:
    """Everything `pretrain scaling plan` prints, as a JSON-ready dict.

    The budget is ``compute``, or ``gpus`` x ``hours`` x peak x ``mfu`` when compute is 0. With both
    compute and gpus, the wall-clock time of the plan is estimated instead.
    """
    from pretrain.scaling.laws import get_law

    the_law = get_law(law)
    peak = peak_flops or (peak_flops_for(gpu) if gpus else 0.0)
    if not compute:
        if not (gpus and hours):
            raise ValueError("give --compute FLOPs, or --gpus and --hours (with --mfu) to derive the budget")
        compute = compute_from_hardware(gpus, hours, mfu, peak)
    best = compute_optimal(the_law, compute)
    out = best.to_dict()
    shape = suggest_shape(best.params, vocab_size=vocab_size, seq_len=seq_len)
    out["shape"] = asdict(shape)
    preset = nearest_preset(best.params)
    out["nearest_preset"] = {"name": preset[0], "params": preset[1]} if preset else None
    if gpus:
        secs = wall_clock_s(compute, gpus, mfu, peak)
        out["wall_clock"] = {"gpus": gpus, "mfu": mfu, "peak_flops": peak, "seconds": secs, "hours": secs / 3600.0,
                             "days": secs / 86400.0}
    if inference_tokens:
        out["inference"] = inference_optimal(the_law, compute, inference_tokens).to_dict()
    return out
