"""The run configuration: one typed config per stage composed into :class:`RunConfig`.

Load order: defaults <- preset <- config file <- ``key=value`` overrides, then validation.
A config file may name a preset to start from with a top-level ``preset = "tiny"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pretrain import configlib
from pretrain.configlib import ConfigError, check
from pretrain.data.config import DataConfig
from pretrain.eval.config import EvalConfig
from pretrain.model.config import ModelConfig
from pretrain.presets import PRESETS
from pretrain.tokenizer.config import TokenizerConfig
from pretrain.train.config import TrainConfig


@dataclass
class RunConfig:
    name: str = "run"
    """Run name: the run directory is runs/<name>/ unless --run-dir says otherwise."""
    preset: str = ""
    """The named preset this config started from (informational once resolved)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data stage: inputs, curation, mixture, loader."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """Tokenizer stage."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Model shape."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training loop."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation."""

    def validate(self) -> None:
        check(bool(self.name) and "/" not in self.name, "name", f"must be a non-empty name without '/' (got {self.name!r})")
        check(
            self.train.seq_len <= self.model.max_seq_len or self.model.rope_scaling.type != "none",
            "train.seq_len",
            f"{self.train.seq_len} exceeds model.max_seq_len={self.model.max_seq_len}",
        )


def resolve(source: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Build a validated RunConfig from a preset name or a TOML/YAML file, plus dotted overrides."""
    data: dict = {}
    if source:
        text = str(source)
        if text in PRESETS:
            data = {"preset": text}
        elif Path(text).suffix in (".toml", ".yaml", ".yml") or Path(text).exists():
            data = configlib.read_file(text)
        else:
            raise ConfigError("preset", f"unknown preset or missing config file {text!r} (presets: {', '.join(PRESETS)})")
    data = configlib.apply_overrides(data, list(overrides or []))
    preset = data.get("preset", "")
    if preset:
        if preset not in PRESETS:
            raise ConfigError("preset", f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        data = configlib.merge(PRESETS[preset], data)
    cfg = configlib.from_dict(RunConfig, data)
    configlib.validate(cfg)
    return cfg


def load_saved(path: str | Path) -> RunConfig:
    """Load a resolved config.toml written by :func:`save` (no preset merging)."""
    data = configlib.read_file(path)
    cfg = configlib.from_dict(RunConfig, data)
    configlib.validate(cfg)
    return cfg


def saved_for_checkpoint(ckpt: str | Path) -> RunConfig | None:
    """The run config recorded with checkpoint ``ckpt`` (its config.toml, else its run directory's), or
    None when there is none or it no longer loads. Composition roots (the CLI) split it for a stage."""
    ckpt = Path(ckpt)
    run_root = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    for path in (ckpt / "config.toml", *([run_root / "config.toml"] if run_root else [])):
        if path.is_file():
            try:
                return load_saved(path)
            except ValueError:
                return None
    return None


def save(cfg: RunConfig, path: str | Path) -> None:
    configlib.write_toml(configlib.to_dict(cfg), path)


def to_dict(cfg: RunConfig) -> dict:
    return configlib.to_dict(cfg)


__all__ = ["ConfigError", "RunConfig", "load_saved", "resolve", "save", "saved_for_checkpoint", "to_dict"]
