"""Steps used by the executor tests, loaded through `data.curate.step_modules` (importable on Ray
workers because the test session puts this folder on PYTHONPATH)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.data.curate.registry import Step, register


@dataclass
class KillOnceOptions:
    marker: str = ""
    """File created just before the process kills itself; while it exists nothing is killed again."""
    word: str = "KILLME"
    """A document containing this word triggers the kill."""
    spare_pid: int = 0
    """Never kill this process (the test runner itself when a task runs in-process)."""
    sleep: float = 0.0
    """Seconds to sleep per document (to make a run last long enough to be interrupted)."""


@register("test_kill_once")
class KillOnce(Step):
    """Kills its own process with SIGKILL (no cleanup, as the OOM killer would) the first time it
    sees ``word``, in the middle of a shard; passes every document otherwise."""

    Options = KillOnceOptions

    def __call__(self, doc):
        if self.o.sleep:
            time.sleep(self.o.sleep)
        if self.o.marker and self.o.word in doc.text and not Path(self.o.marker).exists():
            if os.getpid() == self.o.spare_pid:
                raise RuntimeError("test_kill_once would kill the test runner")
            Path(self.o.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return None


@dataclass
class RemoveFilesOptions:
    paths: list[str] = field(default_factory=list)
    """Files to delete."""
    word: str = "VANISH"
    """A document containing this word triggers the deletion."""


@register("test_remove_files")
class RemoveFiles(Step):
    """Deletes input files the first time it sees ``word``: files that vanish while the run reads them."""

    Options = RemoveFilesOptions

    def __call__(self, doc):
        if self.o.word in doc.text:
            for p in self.o.paths:
                Path(p).unlink(missing_ok=True)
        return None
