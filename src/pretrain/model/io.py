"""Saving and loading model weights: ``model.safetensors`` + ``model_config.json``, never pickles.

A tied LM head is stored once (as the embedding) and re-tied on load. ``resolve_checkpoint`` turns a
checkpoint directory or a run directory into the checkpoint directory to read (a run's
``checkpoints/final/``, else its latest ``checkpoints/step_*``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pretrain import configlib
from pretrain.model.config import ModelConfig
from pretrain.model.transformer import Transformer

WEIGHTS = "model.safetensors"
CONFIG = "model_config.json"


def save_model(model: Transformer, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``model_config.json`` into ``directory`` (created if needed)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as tok_emb.weight
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / CONFIG).write_text(json.dumps(configlib.to_dict(model.cfg), indent=2) + "\n", encoding="utf-8")
    return directory


def load_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG} in {directory} (not a model checkpoint directory)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    cfg = configlib.from_dict(ModelConfig, data, "model")
    configlib.validate(cfg, "model")
    return cfg


def read_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a damaged one (truncated, corrupted header, not safetensors
    at all) is refused in one line that names the file, instead of the library's traceback."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path}: not a readable safetensors file ({why}); the file is damaged or "
                         "incomplete (re-copy it, or resume from another checkpoint)") from None


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> Transformer:
    """Rebuild the Transformer saved in ``directory`` (a checkpoint or run directory)."""
    directory = resolve_checkpoint(directory)
    cfg = load_config(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS} in {directory}")
    state = read_weights(weights, device)
    model = Transformer(cfg).to(device)
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
        state["lm_head.weight"] = state.get("tok_emb.weight")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not match {CONFIG} (missing {missing[:5]}, unexpected {unexpected[:5]})")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(f"{weights}: {key} has shape {tuple(tensor.shape)} but {CONFIG} implies "
                             f"{tuple(expected[key].shape)}")
        if tensor.is_floating_point() != expected[key].is_floating_point():  # load_state_dict would cast
            raise ValueError(f"{weights}: {key} has dtype {tensor.dtype} where the model holds "
                             f"{expected[key].dtype}; these are not this model's weights")
    model.load_state_dict(state)
    return model


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory as is; a run directory -> checkpoints/final/ or the latest checkpoints/step_*."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint or run directory not found: {path}")
    if (path / CONFIG).is_file():
        return path
    ckpts = path / "checkpoints"
    if (ckpts / "final" / CONFIG).is_file():
        return ckpts / "final"
    steps = sorted(p for p in ckpts.glob("step_*") if (p / CONFIG).is_file()) if ckpts.is_dir() else []
    if steps:
        return steps[-1]
    raise FileNotFoundError(f"{path} holds no model ({CONFIG}) and no checkpoints/final or checkpoints/step_*")


def find_tokenizer(checkpoint: Path) -> Path | None:
    """The checkpoint's tokenizer.json copy, else its run directory's tokenizer/tokenizer.json."""
    for candidate in (checkpoint / "tokenizer.json", checkpoint.parent.parent / "tokenizer" / "tokenizer.json"):
        if candidate.is_file():
            return candidate
    return None
