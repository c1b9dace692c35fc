"""Checks the commands run on what the user typed, before any work starts.

A numeric flag out of range is one line naming the flag (``--top-p must be in (0, 1] (got 2)``)
rather than a silent clamp or a confusing failure later; an output location is proven writable
(:mod:`pretrain.writable`); and when a run directory is given where a checkpoint is meant, the
checkpoint actually used is named if it is not the run's final model. Errors are ``ValueError``
subclasses, which the CLI prints as one line with exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path


class OptionError(ValueError):
    """A command-line option out of its range; the message names the option."""


def at_least(option: str, value: float, low: float) -> None:
    if not value >= low:  # NaN fails too
        raise OptionError(f"{option} must be >= {low:g} (got {value:g})")


def in_range(option: str, value: float, low: float, high: float, low_open: bool = False,
             high_open: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` when ``low_open``, ``value < high`` when ``high_open``)."""
    if not low <= value <= high or (low_open and value == low) or (high_open and value == high):  # NaN fails too
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise OptionError(f"{option} must be in {interval} (got {value:g})")


def warn(message: str) -> None:
    """One line on stderr, once (the caller says it once)."""
    print(f"warning: {message}", file=sys.stderr)


def note_checkpoint(given: Path, used: Path) -> None:
    """When a run directory has no checkpoints/final and a step checkpoint stands in, say which: a
    number from an unfinished run should not pass for the final model's."""
    if Path(given).resolve() != used.resolve() and used.name != "final":
        warn(f"{given} has no checkpoints/final; using the latest step checkpoint {used}")


__all__ = ["OptionError", "at_least", "in_range", "note_checkpoint", "warn"]
