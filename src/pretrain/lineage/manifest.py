"""Stage manifests: each stage writes ``manifest.json`` beside its outputs, and they chain.

A manifest holds the stage name, the content hashes (SHA-256) and sizes of its inputs and outputs, its
resolved config, its seed where it has one, the code version (package version, and the git commit when
the code runs from a checkout) and the hashes of the manifests it consumed. Following ``consumed``
from the evaluation's manifest leads back through the checkpoints, the token shards, the tokenizer and
curation to the raw input files, and ``pretrain verify`` recomputes every hash on that chain
(pretrain.lineage.verify).

Checkpoints are listed by the hash of their ``meta.json``, which holds the SHA-256 of each of their
files (pretrain.train.checkpoint), so the manifest stays small and training hashes nothing twice.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pretrain.hashing import sha256_file

MANIFEST = "manifest.json"
VERSION = 1



def files_under(root: Path, names: list[str] | None = None) -> list[Path]:
    """Regular files under ``root`` (or under its entries ``names``), sorted; hidden and manifest files skipped."""
    roots = [root / n for n in names] if names else [root]
    out = []
    for r in roots:
        if r.is_file():
            out.append(r)
        elif r.is_dir():
            out += [p for p in r.rglob("*") if p.is_file() and p.name != MANIFEST
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(out)


def hash_files(root: Path, files: list[Path]) -> dict[str, dict]:
    """{path relative to root: {"sha256", "bytes"}}; a file that cannot be read (curation quarantines
    those) is listed with its error and no hash."""
    out: dict[str, dict] = {}
    for f in files:
        try:
            out[str(f.relative_to(root))] = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
        except OSError as exc:
            out[str(f.relative_to(root))] = {"sha256": None, "bytes": None, "error": exc.strerror or str(exc)}
    return out


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """The package version and, when running from a git checkout, its commit (and whether it has edits)."""
    from pretrain import __version__

    out: dict[str, Any] = {"package": __version__, "git": None}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            out["git"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "-uno", "--", "."], cwd=here.parent,
                                   capture_output=True, text=True, timeout=10)
            out["dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def consumed_entry(manifest: Path) -> dict:
    return {"path": str(manifest.resolve()), "sha256": sha256_file(manifest)}


def manifest_beside(path: Path) -> Path | None:
    """The manifest of the stage that wrote ``path`` (in its directory or a parent, up to three levels)."""
    try:
        p = path.resolve()
        for d in [p if p.is_dir() else p.parent, *list((p if p.is_dir() else p.parent).parents)[:3]]:
            if (d / MANIFEST).is_file():
                return d / MANIFEST
    except OSError:  # a folder this process may not search (curation quarantines what is in it)
        return None
    return None


def write_manifest(out_dir: str | Path, stage: str, *, inputs: list[tuple[str, Path]], outputs: list[str] | None = None,
                   config: dict | None = None, seed: int | None = None, consumed: list[Path] | None = None,
                   extra: dict | None = None, name: str = MANIFEST) -> Path:
    """Write ``out_dir/manifest.json``. ``inputs``: (role, file or directory) pairs, hashed file by file;
    ``outputs``: entries of ``out_dir`` to hash (None: everything in it); ``consumed``: upstream manifests
    (those beside the inputs are found by themselves)."""
    out = Path(out_dir)
    ups = {m.resolve() for m in consumed or []}
    entries = []
    for role, p in inputs:
        p = Path(os.path.abspath(p))  # not resolve(): an input may be a symlink loop (curation quarantines it)
        root = p if p.is_dir() else p.parent
        entry = {"role": role, "path": str(p), "root": str(root)}
        try:
            readable = p.is_dir() or p.is_file()
        except OSError:
            readable = False
        if not readable:
            entries.append({**entry, "files": {p.name: {"sha256": None, "bytes": None, "error": "not a readable file"}}})
            continue
        entries.append({**entry, "files": hash_files(root, files_under(p) if p.is_dir() else [p])})
        up = manifest_beside(p)
        if up is not None and up.resolve() != (out / name).resolve():
            ups.add(up.resolve())
    manifest = {
        # no timestamp: the same inputs, config and code give the same manifest, byte for byte
        "version": VERSION, "stage": stage, "cwd": os.getcwd(), "code": code_version(),
        "config": config or {}, "seed": seed, "inputs": entries,
        "outputs": hash_files(out, files_under(out, outputs)),
        "consumed": [consumed_entry(m) for m in sorted(ups)], **(extra or {}),
    }
    path = out / name
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    return path


def read_manifest(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        from pretrain.lineage.steplog import LineageError

        raise LineageError(f"{path}: unreadable manifest ({exc})") from None
    return data
