"""Training-run points (parameters N, tokens D, compute C, final loss L) read from and written to CSV.

A points file has one row per finished training run. By default the columns are ``params``, ``tokens``
and ``loss`` (what ``pretrain scaling sweep`` writes); other files adapt with column options, e.g.
Epoch AI's Chinchilla extraction has ``Model Size``, ``Training FLOP`` and ``loss`` and no token column,
so tokens come from D = C / 6N as in Besiroglu et al. 2024.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Points:
    """Columns of a points file as float arrays of equal length."""

    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    compute: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.loss)

    def subset(self, idx) -> Points:
        return Points(self.params[idx], self.tokens[idx], self.loss[idx], self.compute[idx], self.source)


def from_arrays(params, tokens, loss, compute=None, source: str = "") -> Points:
    """Points from arrays; compute defaults to 6 N D."""
    n = np.asarray(params, dtype=float)
    d = np.asarray(tokens, dtype=float)
    ell = np.asarray(loss, dtype=float)
    if not (n.shape == d.shape == ell.shape) or n.ndim != 1:
        raise ValueError(f"{source or 'points'}: params, tokens and loss must be 1-D arrays of one length")
    c = 6.0 * n * d if compute is None else np.asarray(compute, dtype=float)
    return Points(n, d, ell, c, source)


def read_points(
    path: str | Path,
    params_column: str = "params",
    tokens_column: str | None = "tokens",
    loss_column: str = "loss",
    flops_column: str | None = None,
    drop_highest: int = 0,
) -> Points:
    """Read a points CSV; with ``flops_column`` tokens are C / 6N (and ``tokens_column`` is ignored).

    ``drop_highest`` removes the K highest-loss rows (Epoch drops 5 outliers from the Chinchilla points).
    Every row must parse: a bad value raises ValueError naming the file, line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"points file not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        need = [params_column, loss_column, flops_column or tokens_column]
        for col in need:
            if col not in header:
                raise ValueError(f"{path}: no column {col!r} (columns: {', '.join(header) or 'none'})")
        rows = []
        for line, row in enumerate(reader, start=2):
            vals = {}
            for col in need:
                raw = (row.get(col) or "").strip()
                try:
                    v = float(raw)
                except ValueError:
                    raise ValueError(f"{path}:{line}: column {col!r} is not a number ({raw!r})") from None
                if not math.isfinite(v) or v <= 0:
                    raise ValueError(f"{path}:{line}: column {col!r} must be a positive finite number (got {raw!r})")
                vals[col] = v
            rows.append(vals)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    n = np.array([r[params_column] for r in rows])
    ell = np.array([r[loss_column] for r in rows])
    if flops_column:
        c = np.array([r[flops_column] for r in rows])
        d = c / (6.0 * n)
    else:
        d = np.array([r[tokens_column] for r in rows])
        c = 6.0 * n * d
    pts = Points(n, d, ell, c, str(path))
    if drop_highest:
        if not 0 <= drop_highest < len(pts):
            raise ValueError(f"{path}: --drop-highest {drop_highest} must be in [0, {len(pts)})")
        keep = np.sort(np.argsort(ell, kind="stable")[: len(pts) - drop_highest])
        pts = pts.subset(keep)
    return pts


def write_points(path: str | Path, rows: list[dict]) -> None:
    """Write run rows (dicts with at least params, tokens, loss) as CSV, columns in first-seen order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    tmp.replace(path)
