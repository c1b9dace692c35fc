"""Helpers shared by the curation tests (importable by name: tests/conftest.py puts tests/helpers/ on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

from pretrain.data.record import open_text


def read_records(d: Path) -> list[dict]:
    """Every record of a curated output folder (data/, removed/ or quarantine/), in file order."""
    out = []
    for f in sorted(d.glob("*.jsonl.zst")):
        with open_text(f) as fh:
            out.extend(json.loads(line) for line in fh)
    return out
