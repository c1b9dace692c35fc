"""The checkpoint an export reads, checked before anything is written.

Training saves each checkpoint with a ``meta.json`` manifest of file sizes and SHA-256 digests (see
``pretrain.train.checkpoint``). Exporting a damaged or half-copied checkpoint would hand people wrong
weights that load without complaint, so the model files are checked against the manifest first. A bare
model directory (``save_model`` output, no manifest) is read as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from pretrain.hashing import sha256_file
from pretrain.model.io import CONFIG, WEIGHTS, resolve_checkpoint

MANIFEST = "meta.json"



def checked_checkpoint(source: str | Path) -> Path:
    """The checkpoint directory of ``source`` (a checkpoint or a run: its final or latest checkpoint) once
    its model files match their manifest; a one-line error names the run or the file otherwise."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"run or checkpoint not found: {path}")
    try:
        ckpt = resolve_checkpoint(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} has no finished checkpoint to export (no checkpoints/final or "
                                "checkpoints/step_* with a model yet: let training save one first)") from None
    manifest = ckpt / MANIFEST
    if not manifest.is_file():
        return ckpt
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        sizes, digests = meta.get("files", {}), meta.get("sha256", {})
    except (json.JSONDecodeError, AttributeError, OSError) as err:
        raise ValueError(f"{manifest}: not a readable checkpoint manifest ({err})") from None
    for name in (WEIGHTS, CONFIG):
        f = ckpt / name
        if name in sizes and (not f.is_file() or f.stat().st_size != sizes[name]):
            raise ValueError(f"{f}: incomplete (its size differs from the checkpoint manifest); the checkpoint was "
                             "not fully written or copied")
        if name in digests and sha256_file(f) != digests[name]:
            raise ValueError(f"{f}: checksum mismatch with {manifest} (the file changed after it was saved)")
    return ckpt
