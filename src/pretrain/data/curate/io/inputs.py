"""Input discovery: the files a run reads, from local paths (walked recursively) or fsspec URLs.

Local directories are walked in sorted order, hidden files and directories skipped, directory symlinks
followed unless they lead back to a directory being walked. Such a looping link, a file-symlink loop,
a broken symlink, a special file (FIFO, socket, device, or a symlink to one) and a file this process
may not read are returned as inputs too, so that reading quarantines each with its reason
(:func:`input_problem`) and the run counts it, instead of skipping it silently or blocking on it.
Named directly on the command line, such a path is refused in one line (:class:`InputError`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pretrain.data.curate.io import storage
from pretrain.data.curate.io.hfdatasets import dataset_files


def _walk(root: Path) -> list[Path]:
    """Files under a local directory, following directory symlinks except those that loop back to a
    directory being walked: such a link, a file-symlink loop, a broken symlink, a special file and a
    directory that cannot be listed are returned too, so that reading quarantines them with their
    reason (see :func:`input_problem`) instead of losing them."""
    out: list[Path] = []

    def visit(d: Path, ancestors: frozenset[str]) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            out.append(d)  # unreadable directory: quarantined as unreadable when read
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            try:
                is_dir = e.is_dir()  # follows symlinks; False for loops and broken links
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(p)
                if e.is_symlink() and real in ancestors:
                    out.append(p)
                else:
                    visit(p, ancestors | {real})
            else:  # files, links that do not lead to a directory, FIFOs, sockets, devices: all counted
                out.append(p)

    visit(root, frozenset({os.path.realpath(root)}))
    return sorted(out)


def link_problem(path) -> str | None:
    """Why a symlink cannot be read (a loop, a missing target, a directory loop), or None."""
    if storage.is_remote(path) or not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        return f"broken symlink (target {os.readlink(path)!r} missing)"
    if target.is_dir():
        return "symlink loop (links to a directory it is inside)"
    return None


class InputError(ValueError):
    """An input named directly that cannot be read: one line naming it and what it is."""


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-directory file is (``"a FIFO"``, ``"a socket"`` ...), or None for a regular file
    or a directory: such files never end (/dev/zero) or block a reader forever (a FIFO nobody writes)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


def input_problem(path) -> str | None:
    """Why a local input cannot be read as a file, or None: a symlink loop or broken link
    (:func:`link_problem`), a special file (or a symlink to one), a file that vanished since it was
    listed, or one this process may not open. Opens nothing that could block: the kind comes from
    ``stat`` first, and only a regular file is opened (and closed at once)."""
    if storage.is_remote(path):
        return None
    if problem := link_problem(path):
        return problem
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "vanished (no such file)"
    except OSError as exc:
        return f"unreadable: {(exc.strerror or str(exc)).lower()}"
    if kind := special_kind(mode):
        return f"{'symlink to ' if os.path.islink(path) else ''}{kind}, not a regular file"
    if stat.S_ISDIR(mode):  # only listed as an input when it could not be listed (see _walk)
        try:
            os.scandir(path).close()
        except OSError as exc:
            return f"unreadable directory: {(exc.strerror or str(exc)).lower()}"
        return None
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except FileNotFoundError:
        return "vanished (no such file)"
    except OSError as exc:
        return f"unreadable: {(exc.strerror or str(exc)).lower()}"
    return None


def _refuse(p: Path) -> None:
    """A path named directly: refused in one line when it cannot be read as an input."""
    try:
        os.lstat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"input not found: {p}") from None
    except OSError as exc:  # a folder on the way that may not be searched
        raise InputError(f"input {p}: unreadable: {(exc.strerror or str(exc)).lower()}") from None
    if os.path.isdir(p):
        try:
            os.scandir(p).close()
        except OSError as exc:
            raise InputError(f"input {p} is a directory that cannot be listed: "
                             f"{(exc.strerror or str(exc)).lower()}") from None
        return
    if problem := input_problem(p):
        raise InputError(f"input {p}: {problem}")


def expand_inputs(inputs: list[str | Path]) -> list:
    """Files named and every file under directories named, recursively, in sorted order; hidden files
    skipped. Local paths become Paths; fsspec URLs become UPaths (``s3://bucket/prefix/`` lists the prefix)."""
    out: list = []
    for item in inputs:
        p = storage.as_path(item)
        if not storage.is_remote(p):
            _refuse(p)  # one line for what cannot be read, before anything looks inside it
        hf = dataset_files(p) if p.is_dir() else None  # a `datasets` folder: its record files only
        if hf is not None:
            out.extend(hf)
        elif storage.is_remote(p):
            if p.is_dir():
                out.extend(sorted((f for f in p.rglob("*") if f.is_file()
                                   and not any(part.startswith(".") for part in f.relative_to(p).parts)),
                                  key=str))
            elif p.is_file():
                out.append(p)
            else:
                raise FileNotFoundError(f"input not found: {item}")
        else:
            out.extend(_walk(p) if p.is_dir() else [p])
    seen: set[str] = set()
    return [f for f in out if not (str(f) in seen or seen.add(str(f)))]


__all__ = ["InputError", "expand_inputs", "input_problem", "link_problem", "special_kind"]
