"""Stock Hugging Face architectures, one module per family (registry and the :class:`Arch` hooks:
:mod:`.base`). Nothing is imported eagerly here, so the family modules may use any helper."""
