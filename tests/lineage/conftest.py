"""Fixtures for the lineage tests: the trainer tests' tiny two-domain corpus, its tokenizer and shards
(tests/train/conftest.py, loaded under its own name so the two conftests do not shadow each other)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # consumed.py: the callback torchrun's processes import by name

_spec = importlib.util.spec_from_file_location("train_conftest", HERE.parent / "train" / "conftest.py")
train_conftest = importlib.util.module_from_spec(_spec)
sys.modules["train_conftest"] = train_conftest
_spec.loader.exec_module(train_conftest)

tiny_data = train_conftest.tiny_data
_threads = train_conftest._threads
