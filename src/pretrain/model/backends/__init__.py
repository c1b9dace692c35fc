"""Attention kernels, one class each, selected by ``model.attention_kernel`` (registry: :mod:`.base`)."""

from pretrain.model.backends.base import AttentionBackend, backend_names, get_backend, register_backend

__all__ = ["AttentionBackend", "backend_names", "get_backend", "register_backend"]
