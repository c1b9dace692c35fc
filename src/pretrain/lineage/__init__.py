"""Data lineage and provenance: which documents each step trained on and back (trace), and the manifest
chain from the raw inputs to the evaluation (manifest, verify, diff). See docs/lineage.md."""

from pretrain.lineage.steplog import LineageError

__all__ = ["LineageError"]
