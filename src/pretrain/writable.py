"""Checking, before any work starts, that an output location can be written.

A run that finds out at its first write that ``--out`` is on a read-only file system has already
spent its planning (or worse, its training) and then dies with a traceback from deep inside. Every
command that writes (``curate --out``, ``train --run-dir``, ``eval --out``, ``export``/``import --out``)
calls :func:`ensure_writable` first: it creates the directory if it is missing, writes and removes a
small probe file in it, and turns any failure into one :class:`OutputNotWritable` line naming the
path, the option it came from and the reason (read-only file system, permission denied, not a
directory, no space left). fsspec URLs are probed the same way, with a probe object.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "not a directory",
    errno.EEXIST: "not a directory",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "name too long",
    errno.ELOOP: "symlink loop",
}
PROBE_PREFIX = ".pretrain-write-probe-"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class OutputNotWritable(ValueError):
    """An output location that cannot be written; the message is one line naming it and why."""


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).splitlines()[0].lower()


def _blocking_file(path: Path) -> Path | None:
    """The first existing component of ``path`` (itself included) that is not a directory."""
    for p in [*reversed(path.parents), path]:
        try:
            if p.exists() and not p.is_dir():
                return p
        except OSError:  # a folder above that may not be searched: the probe below names the reason
            return None
    return None


def _probe_local(path: Path, label: str) -> None:
    if (bad := _blocking_file(path)) is not None:
        why = "not a directory" if bad == path else f"{bad} is not a directory"
        raise OutputNotWritable(f"{label} {path} is not writable: {why}")
    probe = path / f"{PROBE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe")  # a full disk can accept the create and refuse the first byte
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise OutputNotWritable(f"{label} {path} is not writable: {_reason(exc)}") from None


def _probe_url(url: str, label: str) -> None:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        probe = f"{root.rstrip('/')}/{PROBE_PREFIX}{uuid.uuid4().hex[:8]}"
        fs.pipe_file(probe, b"probe")
        fs.rm_file(probe)
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types for a refused write
        if isinstance(exc, OSError) and exc.errno:
            msg = _reason(exc)
        else:
            msg = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputNotWritable(f"{label} {url} is not writable: {msg}") from None


def ensure_writable(target: str | os.PathLike, label: str = "output") -> None:
    """Create ``target`` (a directory or fsspec URL) if needed and prove a file can be written in it;
    raise :class:`OutputNotWritable` with one line naming ``label`` (e.g. ``--out``), the path and
    the reason otherwise."""
    s = os.fspath(target)
    if s.startswith("file://"):
        _probe_local(Path(unquote(urlsplit(s).path)), label)
    elif _URL.match(s):
        _probe_url(s, label)
    else:
        _probe_local(Path(s), label)


__all__ = ["OutputNotWritable", "PROBE_PREFIX", "ensure_writable"]
