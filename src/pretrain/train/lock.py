"""One trainer per run directory: an advisory lock (``flock``) on ``<run>/.train.lock`` holding the pid.

Rank 0 takes it for the whole job (torchrun's other ranks share rank 0's run). A second trainer on the
same directory stops with one line naming the directory and the holder's pid. The kernel drops the lock
when its process dies, so a lock left by a killed process (kill -9, OOM) is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_HELD: dict[str, int] = {}  # path -> re-entry count within this process


class RunLockedError(ValueError):
    """Another live process trains in this run directory."""


class RunLock:
    def __init__(self, run_root: Path):
        self.path = Path(run_root) / ".train.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        key = str(self.path.resolve())
        if key in _HELD:  # already ours (e.g. api.train took it before building the Trainer)
            _HELD[key] += 1
            self._fd = -1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(f"run directory {self.path.parent} is in use by another trainer (pid {holder}); "
                                 "wait for it to finish or use another --run-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _HELD[key] = 1

    def release(self) -> None:
        if self._fd is None:
            return
        key = str(self.path.resolve())
        _HELD[key] = _HELD.get(key, 1) - 1
        if _HELD[key] <= 0:
            _HELD.pop(key, None)
            if self._fd >= 0:
                os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
