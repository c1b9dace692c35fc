"""Atomic checkpoints: write into a hidden temporary directory, fsync, record a manifest, then rename.

A checkpoint directory is valid only if its ``meta.json`` exists and every file its manifest lists has
the recorded size; the manifest also records each file's SHA-256, which ``verify`` checks before a resume
(a flipped byte is refused with one line naming the file). ``meta.json`` is written last and the directory is renamed into place after that, so
a crash (or kill -9) in the middle of a save leaves only a ``.tmp-*`` directory, which readers ignore
and the next run deletes.

Layout (docs/architecture.md): model.safetensors, model_config.json, tokenizer.json, config.toml,
trainer_state.pt (counters, loader, RNG, callbacks; loads with weights_only=True), meta.json, and dcp/
(model + optimizer state in torch.distributed.checkpoint format, see pretrain.train.parallel).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrain.hashing import sha256_file
from pretrain.model.io import read_weights
from pretrain.train.distributed import DistInfo

ALONE = DistInfo()
"""The ranks of a single process (rank 0 of 1): the default of the functions that writing takes part in."""

STEP_RE = re.compile(r"^step_(\d{8})$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt file, bad checksum, non-finite weights); one line."""


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (disk full, file-size limit); one line naming the newest valid one."""



def verify(path: Path) -> None:
    """Check every file of the manifest against its recorded SHA-256; CheckpointError names the first bad one."""
    meta = read_meta(path)
    for rel, digest in sorted(meta.get("sha256", {}).items()):
        f = path / rel
        if not f.is_file():
            raise CheckpointError(f"{f}: listed in the checkpoint manifest but missing")
        if sha256_file(f) != digest:
            raise CheckpointError(f"{f}: checksum mismatch (the file changed after it was saved)")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:08d}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest_and_sync(path: Path) -> str:
    digest = sha256_file(path)
    _fsync(path)
    return digest


def _in_threads(fn: Callable[[Path], Any], paths: list[Path]) -> list:
    """``fn`` over ``paths``, each on its own thread (at most 16). fsync waits for the file system's
    journal commit: ext4 and XFS commit the fsyncs that arrive together in one transaction, so a dozen
    files cost about one commit instead of a dozen one after the other (most of a small model's save
    time when they ran in turn); hashing releases the GIL too."""
    if len(paths) <= 1:
        return [fn(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(16, len(paths)), thread_name_prefix="checkpoint-sync") as pool:
        return list(pool.map(fn, paths))


def _storage_key(t: torch.Tensor) -> tuple:
    """Identity of a tensor's memory: equal for tied parameters, different for distinct views."""
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))


def save_model_weights(model: nn.Module, directory: Path, state_dict: dict | None = None) -> None:
    """model.safetensors (+ model_config.json when the model has a config), via the model package if it applies."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        from pretrain.model import Transformer
        from pretrain.model.io import save_model
    except ImportError:  # the model package is optional for generic modules
        Transformer, save_model = None, None  # type: ignore[assignment]
    if state_dict is None and Transformer is not None and isinstance(model, Transformer):
        save_model(model, directory)
        return
    from safetensors.torch import save_file

    sd = state_dict if state_dict is not None else model.state_dict()
    # safetensors refuses shared storage: store each tensor once, contiguous (tied weights are re-tied on load).
    seen: set[tuple] = set()
    out = {}
    for k, v in sd.items():
        key = _storage_key(v)
        if key in seen:
            continue
        seen.add(key)
        out[k] = v.detach().to("cpu").contiguous()
    save_file(out, str(directory / "model.safetensors"))
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        import dataclasses

        from pretrain import configlib

        if dataclasses.is_dataclass(cfg):
            (directory / "model_config.json").write_text(json.dumps(configlib.to_dict(cfg), indent=2))


def load_model_weights(model: nn.Module, directory: Path) -> dict[str, torch.Tensor]:
    """Full state dict from model.safetensors, completed with tied weights the file stores once."""
    path = directory / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint has no model weights: {path}")
    try:
        sd = read_weights(path)
    except ValueError as exc:  # a damaged file: one line naming it
        raise CheckpointError(str(exc)) from None
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    # Tied parameters: fill a missing key from another name of the same Parameter object (this also
    # works for FSDP's DTensor parameters, whose storage cannot be inspected).
    names: dict[int, list[str]] = {}
    for k, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(k)
    alias = {k: group for group in names.values() for k in group}
    for k in missing:
        for other in alias.get(k, []):
            if other in sd:
                sd[k] = sd[other]
                break
    still = [k for k in own if k not in sd]
    if still:
        raise CheckpointError(f"{path}: missing tensors {still[:3]}{'...' if len(still) > 3 else ''}")
    for k, want in own.items():
        got = sd[k]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: tensor {k} has shape {tuple(got.shape)}, the model expects "
                                  f"{tuple(want.shape)}")
        # Casting between float widths is lossless enough to allow; int or bool weights never are.
        if got.dtype != want.dtype and not (got.dtype.is_floating_point and want.dtype.is_floating_point):
            raise CheckpointError(f"{path}: tensor {k} is {got.dtype}, the model expects {want.dtype}")
    return sd


def write_error(exc: BaseException) -> OSError | None:
    """``exc`` as the OSError of a failed write, or None when it is something else (a bug is not a full
    disk). A full disk or a file-size limit reaches a save as an OSError, as safetensors' SafetensorError,
    as torch.save's RuntimeError (its zip writer) or, inside torch.distributed.checkpoint, as a
    CheckpointException (a BaseException wrapping each rank's error)."""
    if isinstance(exc, OSError):
        return exc
    from safetensors import SafetensorError
    from torch.distributed.checkpoint.api import CheckpointException

    if not isinstance(exc, (CheckpointException, SafetensorError, RuntimeError)):
        return None
    inner = next((e for e, _trace in exc.failures.values()), exc) if isinstance(exc, CheckpointException) else exc
    if isinstance(inner, OSError):
        return inner
    first = (str(inner).strip().splitlines() or [""])[0]
    if isinstance(inner, RuntimeError) and not any(w in first for w in ("inline_container", "StreamWriter")):
        return None
    return OSError(f"{type(inner).__name__} while writing the checkpoint: {first[:200]}")


def on_main(work: Callable[[], None], ranks: DistInfo = ALONE) -> None:
    """Run ``work`` (a write only rank 0 does) on rank 0, then let every rank learn whether it succeeded
    (``DistInfo.agree``: one all-reduce of one integer, which also stands in for a barrier). If it failed,
    every rank raises rank 0's OSError at this same point, so ``train.on_save_error`` ("stop" or
    "continue") is applied by all ranks at once; before, the other ranks went on into the next collective
    and waited there until the watchdog ended them. An error that is not a write error (a bug) is raised
    on rank 0 alone; the others then fail their next collective (a peer is gone)."""
    error: OSError | None = None
    if ranks.is_main:
        try:
            work()
        except BaseException as exc:
            error = write_error(exc)
            if error is None:
                raise
    if ranks.agree(error is None):
        return
    if error is not None:
        ranks.share((error.errno, error.strerror, error.filename, str(error)))
        raise error
    errno, strerror, filename, text = ranks.share(None)
    raise OSError(errno, strerror, filename) if errno else OSError(text)


def write_checkpoint(
    root: Path,
    name: str,
    write_files: Callable[[Path], None],
    meta: dict,
    ranks: DistInfo = ALONE,
) -> Path:
    """Create ``root/name`` atomically; ``write_files(tmpdir)`` writes the payload (on every rank).

    Rank 0 prepares and finalises; every rank calls ``write_files`` in between (sharded state is
    written by all ranks).
    """
    tmp = begin_checkpoint(root, name, ranks)
    write_files(tmp)
    return finish_checkpoint(root, name, meta, ranks)


def begin_checkpoint(root: Path, name: str, ranks: DistInfo = ALONE) -> Path:
    """Make the empty temporary directory ``root/.tmp-name`` (rank 0) and return it (all ranks, once it
    exists; if rank 0 could not make it, every rank raises its OSError)."""
    tmp = root / f".tmp-{name}"

    def make() -> None:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)

    on_main(make, ranks)
    return tmp


def finish_checkpoint(root: Path, name: str, meta: dict, ranks: DistInfo = ALONE) -> Path:
    """Once every rank has written into ``.tmp-name``: manifest (sizes, SHA-256), fsync, rename into place
    (rank 0; a failure there is raised on every rank, see ``on_main``)."""
    ranks.barrier()  # every rank's files are in place
    on_main(lambda: _seal(root, name, meta), ranks)
    return root / name


def _seal(root: Path, name: str, meta: dict) -> None:
    final = root / name
    tmp = root / f".tmp-{name}"
    paths = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
    rels = [str(p.relative_to(tmp)) for p in paths]
    files = {rel: p.stat().st_size for rel, p in zip(rels, paths, strict=True)}
    sums = dict(zip(rels, _in_threads(_digest_and_sync, paths), strict=True))  # every file durable
    meta = dict(meta, files=files, sha256=sums, saved_at=time.time())
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    dirs = [p for p in tmp.rglob("*") if p.is_dir()]
    _in_threads(_fsync, [tmp / "meta.json", *dirs, tmp])  # meta.json and every directory's entries
    if final.exists():  # re-saving the same step (e.g. after a rewind): replace it atomically enough
        old = root / f".old-{name}"
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    _fsync(root)


def is_valid(path: Path) -> bool:
    """True if ``path`` is a complete checkpoint: meta.json present and every manifest file of the right size."""
    meta_path = path / "meta.json"
    if path.name.startswith(".") or not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, OSError):
        return False
    files = meta.get("files")
    if not isinstance(files, dict) or "trainer_state.pt" not in files and "model.safetensors" not in files:
        return False
    for rel, size in files.items():
        f = path / rel
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def read_meta(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())


def list_checkpoints(root: Path) -> list[Path]:
    """Valid step checkpoints under ``root`` in step order."""
    if not root.is_dir():
        return []
    out = [p for p in root.iterdir() if STEP_RE.match(p.name) and is_valid(p)]
    return sorted(out, key=lambda p: int(STEP_RE.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(root: Path) -> Path | None:
    cps = list_checkpoints(root)
    return cps[-1] if cps else None


def clean_temporaries(root: Path) -> list[Path]:
    """Remove leftovers of interrupted saves; returns what was removed."""
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def prune(root: Path, keep_last: int, wait: bool = True) -> list[Path]:
    """Delete step checkpoints beyond the newest ``keep_last``, sparing milestones (meta "milestone": true).
    Each is renamed out of sight at once; ``wait=False`` deletes the renamed directories on a thread of
    their own (the trainer's saves: unlinking a checkpoint's files took 10-30 ms of each save here, more
    on a loaded disk), and a deletion cut short by the process's end is finished by the next run's
    ``clean_temporaries``."""
    cps = list_checkpoints(root)
    candidates = [p for p in cps if not read_meta(p).get("milestone")]
    doomed = candidates[:-keep_last] if keep_last > 0 else candidates
    trash = []
    for p in doomed:
        # Rename first so a crash while deleting never leaves a half-deleted directory that looks valid.
        trash.append(p.with_name(f".old-{p.name}"))
        os.rename(p, trash[-1])

    def delete() -> None:
        for t in trash:
            shutil.rmtree(t, ignore_errors=True)

    if wait or not trash:
        delete()
    else:
        _PRUNING.append(threading.Thread(target=delete, name="checkpoint-prune"))
        _PRUNING[-1].start()
    return doomed


_PRUNING: list[threading.Thread] = []


def wait_pruned() -> None:
    """Wait until the deletions ``prune(wait=False)`` started have finished."""
    while _PRUNING:
        _PRUNING.pop().join()


def save_trainer_state(state: dict, path: Path) -> None:
    torch.save(state, path)


def load_trainer_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable trainer state ({type(exc).__name__}: {first[:200]})") from None


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights of several checkpoints (accumulated in float64)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    acc: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for p in paths:
        sd = read_weights(p / "model.safetensors") if (p / "model.safetensors").is_file() else read_dcp_model(p)
        if acc and set(sd) != set(acc):
            raise ValueError(f"{p}: tensors differ from {paths[0]}; cannot average")
        for k, v in sd.items():
            dtypes[k] = v.dtype
            if k in acc:
                acc[k] += v.double()
            else:
                acc[k] = v.double().clone()
    return {k: (v / len(paths)).to(dtypes[k]) for k, v in acc.items()}


def read_dcp_model(path: Path) -> dict[str, torch.Tensor]:
    """Whole model tensors from a checkpoint's dcp/ (e.g. an FSDP step checkpoint), in this process only."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    reader = dcp.FileSystemReader(str(path / "dcp"))
    meta = reader.read_metadata().state_dict_metadata
    model = {k[len("model."):]: torch.empty(tuple(m.size), dtype=m.properties.dtype)
             for k, m in meta.items() if k.startswith("model.") and isinstance(m, TensorStorageMetadata)}
    holder = {"model": model}
    dcp.load(holder, storage_reader=reader, no_dist=True)
    return holder["model"]
