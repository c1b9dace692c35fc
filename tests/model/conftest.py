"""Fixtures for the model tests (model_helpers.py is made importable: the suite may run with
--import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from model_helpers import build_tokenizer  # noqa: E402


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
