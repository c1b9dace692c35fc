"""Where a run's output lives: a local directory, or an fsspec URL that the tasks write to themselves.

A local ``--out`` is used as it always was: tasks write into it (temporary name, then rename) and the
driver reads the completion markers there. It needs a file system every node sees.

An ``--out`` URL (``s3://bucket/run``, ``gs://`` ...) needs no shared file system, so a Ray cluster of
separate machines can write it:

- every task runs in a private scratch directory on its own node (under ``$PRETRAIN_STAGING``, else the
  system temp directory). It downloads the files it reads (its segment's input shard; the work files
  of the global step it applies or runs), runs exactly as it would on local output, uploads every file
  it wrote to the same name under the URL with its completion marker last, and deletes the directory.
  An object store's PUT is atomic (a reader sees a whole object or none) and each name is written with
  the same bytes by any retry, so a marker at the URL means all of that task's files are there;
- a global step's work files are cached once per node (hard-linked into each task's directory), since
  every task of a stage reads part of every shard's files; the caches are removed, on every node, when
  the run has finished;
- the driver reads the plan, the markers and the shard stats from the URL only, so a rerun, from any
  machine, resumes from what the URL holds.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pretrain.data.curate.io import storage


def atomic_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


class LocalOut:
    """Output in a local directory (every node must see it: one machine, or a shared file system)."""

    remote = False

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.ident = str(self.root.resolve())

    def read_json(self, rel: str) -> Any:
        """The parsed file, or None when it is missing or not JSON (a half-written file never is: renames)."""
        try:
            return json.loads((self.root / rel).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def read_jsons(self, rels: list[str]) -> list[Any]:
        return [json.loads((self.root / r).read_text(encoding="utf-8")) for r in rels]

    def write_json(self, rel: str, data: Any) -> None:
        atomic_json(self.root / rel, data)

    def names(self, rel_dir: str) -> set[str]:
        d = self.root / rel_dir
        return {p.name for p in d.iterdir()} if d.is_dir() else set()

    def remove(self, rel: str) -> None:
        p = self.root / rel
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

    def remove_files(self, rel_dir: str, suffix: str) -> None:
        for f in (self.root / rel_dir).glob(f"*{suffix}"):
            f.unlink()


class RemoteOut:
    """Output under an fsspec URL. The filesystem's listing cache is dropped before every read (s3fs
    keeps listings per process, and other processes, on other machines, write here)."""

    remote = True

    def __init__(self, url: str):
        import fsspec

        storage.as_path(url)  # a one-line error for a scheme without a filesystem, before any work
        self.url = self.ident = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url)

    def _p(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def read_json(self, rel: str) -> Any:
        self.fs.invalidate_cache()
        try:
            return json.loads(self.fs.cat_file(self._p(rel)))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def read_jsons(self, rels: list[str]) -> list[Any]:
        if not rels:
            return []
        self.fs.invalidate_cache()
        got = self.fs.cat([self._p(r) for r in rels], on_error="raise")
        # fsspec returns keys in the filesystem's own form: match them by their relative name
        by_rel = {k[len(self.base) + 1:] if k.startswith(self.base) else k: v for k, v in got.items()}
        return [json.loads(by_rel[r]) for r in rels]

    def write_json(self, rel: str, data: Any) -> None:
        self.fs.pipe_file(self._p(rel), json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"))

    def listing(self, rel_dir: str) -> dict[str, int]:
        """Names and sizes of the files directly under ``rel_dir``."""
        path = self._p(rel_dir)
        self.fs.invalidate_cache()
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return {}
        return {e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0)
                for e in entries if e.get("type") != "directory"}

    def names(self, rel_dir: str) -> set[str]:
        return set(self.listing(rel_dir))

    def remove(self, rel: str) -> None:
        self.fs.invalidate_cache()
        try:
            self.fs.rm(self._p(rel), recursive=True)
        except FileNotFoundError:
            pass

    def remove_files(self, rel_dir: str, suffix: str) -> None:
        doomed = [self._p(f"{rel_dir}/{n}") for n in sorted(self.names(rel_dir)) if n.endswith(suffix)]
        if doomed:
            self.fs.rm(doomed)

    def get(self, rel: str, dest: Path) -> bool:
        """Download one file (to a temporary name, then renamed); False if it does not exist."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}-{dest.name}")
        try:
            self.fs.get_file(self._p(rel), str(tmp))
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            return False
        tmp.replace(dest)
        return True

    def put(self, src: Path, rel: str) -> None:
        self.fs.put_file(str(src), self._p(rel))


def open_out(target: str | Path) -> LocalOut | RemoteOut:
    return RemoteOut(str(target)) if storage.is_url(target) else LocalOut(target)


def node_dir(url: str) -> Path:
    """This node's scratch directory for runs writing to ``url``."""
    root = Path(os.environ.get("PRETRAIN_STAGING") or Path(tempfile.gettempdir()) / "pretrain-staging")
    return root / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:  # another device, or no hard links on this file system
        shutil.copyfile(src, dest)


def run_task(url: str, key: str, marker: str, fetch: Iterable[str], cached: Iterable[tuple[str, tuple[str, ...]]],
             fn: Callable[[Path], Any]) -> Any:
    """Run ``fn(task_dir)`` in a private directory laid out like the output, then upload what it wrote.

    ``fetch``: files (relative to the output) downloaded first, if they exist; ``cached``: (directory,
    name patterns) of work files, kept in this node's cache for later tasks; ``marker``: the completion
    marker, uploaded after every other file the task wrote."""
    store = RemoteOut(url)
    node = node_dir(url) / key
    cache = node / "cache"
    (node / "tasks").mkdir(parents=True, exist_ok=True)
    task = Path(tempfile.mkdtemp(prefix="task-", dir=node / "tasks"))
    try:
        inputs: dict[str, int] = {}  # relative name -> inode, to tell the files the task wrote
        for rel in fetch:
            if store.get(rel, task / rel):
                inputs[rel] = (task / rel).stat().st_ino
        for rel_dir, patterns in cached:
            for name, size in store.listing(rel_dir).items():
                if name.startswith(".tmp-") or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    continue
                rel = f"{rel_dir}/{name}"
                if not (cache / rel).is_file() or (cache / rel).stat().st_size != size:
                    store.get(rel, cache / rel)
                _link(cache / rel, task / rel)
                inputs[rel] = (task / rel).stat().st_ino
        result = fn(task)
        wrote = sorted(p.relative_to(task).as_posix() for p in task.rglob("*")
                       if p.is_file() and not p.name.startswith(".tmp-"))
        wrote = [r for r in wrote if inputs.get(r) != (task / r).stat().st_ino]
        wrote.sort(key=lambda r: r == marker)  # the marker last: seen at the URL only when the rest is there
        for rel in wrote:
            store.put(task / rel, rel)
        for rel in wrote:  # this node's later tasks read these work files from the cache
            if rel.startswith("work/g-"):
                (cache / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(task / rel, cache / rel)
        return result
    finally:
        shutil.rmtree(task, ignore_errors=True)


def drop_node_cache(url: str) -> None:
    """Remove this node's scratch files for runs writing to ``url`` (run once on every node at the end)."""
    shutil.rmtree(node_dir(url), ignore_errors=True)


__all__ = ["LocalOut", "RemoteOut", "atomic_json", "drop_node_cache", "node_dir", "open_out", "run_task"]
