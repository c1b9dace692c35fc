"""Train/validation split by document id: the same document is always on the same side.

The rule depends only on the document's id (a hash of its text), so the split is stable across
runs, worker counts and corpus growth, and a duplicate document can never land on both sides.
"""

from __future__ import annotations

import hashlib


def heldout_score(doc_id: str) -> float:
    """A uniform number in [0, 1) derived from the id (re-hashed, so any id format works)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_heldout(doc_id: str, fraction: float) -> bool:
    """True when the document belongs to the validation split of the given fraction."""
    return heldout_score(doc_id) < fraction


def split_key(doc) -> str:
    """What the split hashes: ``meta["split_key"]`` when the producer groups documents, else the id.

    Documents derived from one source (a module's code and its docstrings, say) share a split key, so
    they land on the same side and validation never sees text that training saw in another form.
    """
    return str(doc.meta.get("split_key") or doc.id)


def doc_is_heldout(doc, fraction: float) -> bool:
    """:func:`is_heldout` applied to the document's :func:`split_key`."""
    return fraction > 0 and is_heldout(split_key(doc), fraction)
