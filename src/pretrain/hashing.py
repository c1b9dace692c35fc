"""Content hashes of files: checkpoint digests (train/checkpoint.py), the checks an export makes of the
checkpoint it reads (model/hf/source.py) and the lineage manifests (lineage/manifest.py) all use this
one, so a digest written by one stage is the digest another recomputes."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB pieces (never whole in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(chunk), b""):
            h.update(piece)
    return h.hexdigest()


__all__ = ["sha256_file"]
