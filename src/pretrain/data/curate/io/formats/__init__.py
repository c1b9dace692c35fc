"""Input file formats, one class each, found by suffix (registry and shared record types: :mod:`.base`)."""

from pretrain.data.curate.io.formats.base import (
    Cuts,
    InputFormat,
    Quarantined,
    Shard,
    fallback_format,
    format_of,
    formats,
    register_format,
)

__all__ = ["Cuts", "InputFormat", "Quarantined", "Shard", "fallback_format", "format_of", "formats", "register_format"]
