"""Configuration of the mixture (domain weights over training), fill-in-the-middle and the packing loader."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check


@dataclass
class MixturePoint:
    at: float = 0.0
    """Training progress in [0, 1] where these weights hold exactly (linear in between)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Domain -> weight (normalised to sum to 1)."""


@dataclass
class MixtureConfig:
    weights: dict[str, float] = field(default_factory=dict)
    """Static domain weights ({} = proportional to each domain's tokens)."""
    schedule: list[MixturePoint] = field(default_factory=list)
    """Piecewise-linear curriculum over training progress; overrides `weights` when given."""
    max_epochs_warning: float = 4.0
    """Warn when a domain would be repeated more than this many epochs."""


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
