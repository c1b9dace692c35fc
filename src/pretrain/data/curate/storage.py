"""Where curation reads and writes: local paths, or any fsspec URL (``s3://``, ``gs://``, ``hf://`` ...).

A plain path or a ``file://`` URL becomes a :class:`pathlib.Path`; any other URL becomes a
:class:`upath.UPath` (universal_pathlib, fsspec's pathlib front end), so the readers use one API for both
(``name``, ``stat()``, ``open("rb")``, ``read_bytes()``, ``rglob``). Credentials and endpoints come the
way the filesystem's library takes them (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` for MinIO/Ceph/moto, or ``~/.aws``).

Output to a URL is *staged*: the run writes into a local directory named after the URL (under the system
temp directory, or ``$PRETRAIN_STAGING``), which keeps resumption working the usual way (atomic renames,
per-shard stats files), and the finished output (``data/``, ``removed/``, ``quarantine/``,
``stats.json``) is uploaded at the end. A later run first pulls the remote ``stats.json``, so a finished
run is not redone. The staging directory must have room for one run's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
OUTPUT_PARTS = ("data", "removed", "quarantine")


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


def _staging_dir(url: str) -> Path:
    root = Path(os.environ.get("PRETRAIN_STAGING") or Path(tempfile.gettempdir()) / "pretrain-staging")
    return root / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def _fs(url: str):
    import fsspec

    fs, root = fsspec.core.url_to_fs(url.rstrip("/"))
    return fs, root


def curate_to_url(run: Callable[..., dict[str, Any]], out_url: str, progress: bool, **kwargs) -> dict[str, Any]:
    """Run ``run(out_dir=<local staging dir>, progress=..., **kwargs)`` and upload its output to ``out_url``.

    The remote ``stats.json`` is pulled first: when the run answers it with the same fingerprint (already
    curated), nothing is uploaded. Otherwise the remote output parts are replaced by the new ones.
    """
    as_path(out_url)  # a clear error for an unknown scheme before any work
    fs, root = _fs(out_url)
    stage = _staging_dir(out_url)
    stage.mkdir(parents=True, exist_ok=True)
    remote_stats = f"{root}/stats.json"
    before = None
    if fs.exists(remote_stats):
        data = fs.cat_file(remote_stats)
        (stage / "stats.json").write_bytes(data)
        before = json.loads(data).get("fingerprint")
    stats = run(out_dir=stage, progress=progress, **kwargs)
    if stats.get("fingerprint") != before:
        for part in OUTPUT_PARTS:
            if fs.exists(f"{root}/{part}"):
                fs.rm(f"{root}/{part}", recursive=True)
        for part in OUTPUT_PARTS:
            local = stage / part
            for f in sorted(local.rglob("*")) if local.is_dir() else []:
                if f.is_file():
                    fs.put_file(str(f), f"{root}/{f.relative_to(stage).as_posix()}")
        # stats.json last: a reader that sees it sees the whole output
        fs.put_file(str(stage / "stats.json"), remote_stats)
        if progress:
            print(f"uploaded to {out_url}")
    shutil.rmtree(stage, ignore_errors=True)
    return stats


__all__ = ["as_path", "curate_to_url", "is_remote", "is_url", "open_binary"]
