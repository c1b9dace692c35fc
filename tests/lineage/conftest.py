"""Fixtures for the lineage tests: the trainer tests' tiny two-domain corpus, its tokenizer and shards
(tests/train/conftest.py, loaded under its own name so the two conftests do not shadow each other)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent

_spec = importlib.util.spec_from_file_location("train_conftest", HERE.parent / "train" / "conftest.py")
train_conftest = importlib.util.module_from_spec(_spec)
sys.modules["train_conftest"] = train_conftest
_spec.loader.exec_module(train_conftest)

tiny_data = train_conftest.tiny_data


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests share 2 cores with other work; one thread keeps runs deterministic and polite.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
