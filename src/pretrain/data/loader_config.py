"""Configuration of the mixture (domain weights over training), fill-in-the-middle and the packing loader."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check


def _check_weights(weights: dict[str, float], name: str) -> None:
    for d, w in weights.items():
        check(w >= 0, f"{name}.{d}", f"must be >= 0 (got {w})")
    if weights:
        check(sum(weights.values()) > 0, name, "weights must not all be zero")


@dataclass
class MixturePoint:
    at: float = 0.0
    """Training progress in [0, 1] where these weights hold exactly (linear in between)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Domain -> weight (normalised to sum to 1)."""

    def validate(self) -> None:
        check(0.0 <= self.at <= 1.0, "at", f"must be in [0, 1] (got {self.at})")
        check(bool(self.weights), "weights", "a schedule point needs at least one domain weight")
        _check_weights(self.weights, "weights")


@dataclass
class MixtureConfig:
    weights: dict[str, float] = field(default_factory=dict)
    """Static domain weights ({} = proportional to each domain's tokens)."""
    schedule: list[MixturePoint] = field(default_factory=list)
    """Piecewise-linear curriculum over training progress; overrides `weights` when given."""
    anneal_weights: dict[str, float] = field(default_factory=dict)
    """Mix for the final annealing phase (Llama 3 upsamples high-quality data there); {} = none."""
    anneal_start: float = 1.0
    """Training progress from which `anneal_weights` replace the mix (e.g. 0.9 for the last 10%)."""
    max_epochs_warning: float = 4.0
    """Warn when a domain would be repeated more than this many epochs."""

    def validate(self) -> None:
        _check_weights(self.weights, "weights")
        _check_weights(self.anneal_weights, "anneal_weights")
        ats = [p.at for p in self.schedule]
        check(ats == sorted(ats), "schedule", f"points must be in increasing 'at' order (got {ats})")
        check(0.0 <= self.anneal_start <= 1.0, "anneal_start", f"must be in [0, 1] (got {self.anneal_start})")
        check(self.max_epochs_warning > 0, "max_epochs_warning", "must be > 0")


@dataclass
class FIMConfig:
    rate: float = 0.0
    """Fraction of documents turned into fill-in-the-middle examples (Bavarian et al. use 0.5)."""
    spm_rate: float = 0.5
    """Of the FIM documents, the fraction in SPM order (the rest PSM)."""
    domains: list[str] = field(default_factory=lambda: ["code"])
    """Domains the FIM transform applies to."""

    def validate(self) -> None:
        check(0.0 <= self.rate <= 1.0, "rate", f"must be in [0, 1] (got {self.rate})")
        check(0.0 <= self.spm_rate <= 1.0, "spm_rate", f"must be in [0, 1] (got {self.spm_rate})")


@dataclass
class LoaderConfig:
    pack: bool = True
    """Pack documents back to back into full sequences (False = one document per row, padded)."""
    doc_mask: bool = True
    """Return document ids so attention never crosses a document boundary."""
    fim: FIMConfig = field(default_factory=FIMConfig)
    """Fill-in-the-middle transform."""
    lineage: bool = True
    """Fill Batch.lineage with (shard, document) pairs per row (cheap; off only for benchmarks)."""
    chunk_tokens: int = 1 << 20
    """Stream tokens rendered per domain at a time (document slices of the memmap, one concatenate)."""

    def validate(self) -> None:
        check(self.chunk_tokens >= 1024, "chunk_tokens", f"must be >= 1024 (got {self.chunk_tokens})")
