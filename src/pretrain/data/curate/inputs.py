"""Input discovery: the files a run reads, from local paths (walked recursively) or fsspec URLs.

Local directories are walked in sorted order, hidden files and directories skipped, directory symlinks
followed unless they lead back to a directory being walked. Such a looping link, a file-symlink loop
and a broken symlink are returned as inputs too, so that reading quarantines each with its reason
(:func:`link_problem`) and the run counts it, instead of skipping it silently.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pretrain.data.curate import storage
from pretrain.data.curate.hfdatasets import dataset_files


def _walk(root: Path) -> list[Path]:
    """Files under a local directory, following directory symlinks except those that loop back to a
    directory being walked: such a link, a file-symlink loop and a broken symlink are returned too, so
    that reading quarantines them with their reason (see :func:`link_problem`) instead of losing them."""
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
            elif e.is_symlink() or e.is_file():  # is_symlink first: is_file raises on a loop
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


def expand_inputs(inputs: list[str | Path]) -> list:
    """Files named and every file under directories named, recursively, in sorted order; hidden files
    skipped. Local paths become Paths; fsspec URLs become UPaths (``s3://bucket/prefix/`` lists the prefix)."""
    out: list = []
    for item in inputs:
        p = storage.as_path(item)
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
        elif p.is_dir():
            out.extend(_walk(p))
        elif p.is_file() or link_problem(p):
            out.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    seen: set[str] = set()
    return [f for f in out if not (str(f) in seen or seen.add(str(f)))]


__all__ = ["expand_inputs", "link_problem"]
