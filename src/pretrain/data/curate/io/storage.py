"""Where curation reads and writes: local paths, or any fsspec URL (``s3://``, ``gs://``, ``hf://`` ...).

A plain path or a ``file://`` URL becomes a :class:`pathlib.Path`; any other URL becomes a
:class:`upath.UPath` (universal_pathlib, fsspec's pathlib front end), so the readers use one API for both
(``name``, ``stat()``, ``open("rb")``, ``read_bytes()``, ``rglob``). Credentials and endpoints come the
way the filesystem's library takes them (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` for MinIO/Ceph/moto, or ``~/.aws``).

Output to a URL is written by the tasks themselves, each from its own node, so a multi-node run needs
no shared file system (see :mod:`pretrain.data.curate.io.outstore`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(target: str | os.PathLike) -> bool:
    """True for a URL other than ``file://`` (those are read as local paths)."""
    s = str(target)
    return bool(_URL.match(s)) and not s.startswith("file://")


def as_path(target: str | os.PathLike):
    """A Path for local paths and ``file://`` URLs, a UPath for any other URL (one-line error if no
    fsspec filesystem is installed for its scheme)."""
    if isinstance(target, Path) and not is_url(target):
        return target
    s = str(target)
    if s.startswith("file://"):
        return Path(unquote(urlsplit(s).path))
    if not is_url(s):
        return Path(s)
    from upath import UPath

    try:
        return UPath(s)
    except (ValueError, ImportError) as exc:
        scheme = s.split("://", 1)[0]
        raise ValueError(f"{s}: no filesystem for '{scheme}://' ({str(exc).splitlines()[0]}); install the "
                         f"fsspec package for it (s3fs, gcsfs, huggingface_hub ...)") from None


def open_binary(path):
    """The raw byte stream of a local or remote file."""
    return path.open("rb")


def is_remote(path) -> bool:
    return not isinstance(path, Path) or is_url(str(path))


__all__ = ["as_path", "is_remote", "is_url", "open_binary"]
