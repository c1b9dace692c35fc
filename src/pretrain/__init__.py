"""pretrain: raw files to a trained, evaluated base language model."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# libgomp (torch's OpenMP) reads OMP_WAIT_POLICY once, when torch loads. PASSIVE keeps training steps from
# collapsing when other processes share the cores (pretrain/train/hardware.py, docs/performance.md).
WAIT_POLICY_BEFORE_TORCH = "torch" not in _sys.modules or "OMP_WAIT_POLICY" in _os.environ
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
