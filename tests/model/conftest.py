"""Fixtures for the model tests (model_helpers.py is in tests/helpers/, importable by name)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import build_tokenizer


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # Tiny models are dominated by per-op overhead; a second intra-op thread only adds synchronisation
    # (10x slower on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json")
