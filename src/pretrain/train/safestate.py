"""Trainer state that loads with ``torch.load(weights_only=True)``: numpy values become tensors and plain
Python (losslessly), and the RNG states of torch, numpy and Python are captured and restored."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def to_safe(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = [to_safe(v) for v in obj]
        return out if isinstance(obj, list) else {"__tuple__": out}
    return obj


def from_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        if set(obj) == {"__tuple__"}:
            return tuple(from_safe(v) for v in obj["__tuple__"])
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    return obj


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": to_safe(np.random.get_state()),
             "python": to_safe(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(from_safe(state["numpy"]))
    random.setstate(from_safe(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
