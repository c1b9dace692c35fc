"""The live console view during training, as the report package has always exported it: the
implementation is pretrain.liveview, which the trainer shows too (one view, below both packages)."""

from pretrain.liveview import LiveProgress, format_eta

__all__ = ["LiveProgress", "format_eta"]
