"""Goodput: where a run's wall time went, across every attempt (restarts, relaunches after preemption).

Rank 0 keeps a ledger in ``RUN/goodput.json``: seconds per part, the wall-clock time of the latest
record and the highest step any attempt finished. Time is attributed by marks: each mark adds the time
since the previous one to a part, so the parts always add up to the wall time from the first attempt's
process start to the latest mark. The parts:

  productive       steps trained for the first time
  recomputed       steps trained again after a restart (they were done before the checkpoint was lost)
  checkpoint_save  writing checkpoints (final/ included)
  checkpoint_load  verifying and loading the checkpoint a run resumed from
  evaluation       held-out evaluation
  startup          process start to the first step: imports, data, model, process group (and, on GPU,
                   torch.compile's first compilation counts in the first step: productive)
  lost             between an attempt's last record and the next attempt's process start: the failure,
                   its detection, the restart (a relaunch after preemption included)
  other            the rest (teardown after the last step)

``goodput = productive / total``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pretrain.train.cadence import checkpoint_interval_steps

PARTS = ("productive", "recomputed", "checkpoint_save", "checkpoint_load", "evaluation", "startup", "lost", "other")

_START: float | None = None


def set_start(t: float) -> None:
    """When this training process (or in-process call) started, for the next run's ``startup`` part."""
    global _START
    _START = t


def take_start(default: float) -> float:
    """The start set by ``set_start`` (used once), else ``default``."""
    global _START
    t, _START = _START, None
    return default if t is None else t


def process_start_time(pid: int | str = "self") -> float:
    """Wall-clock creation time of a process (this one by default; Linux /proc), else now."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


@dataclass
class Ledger:
    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    first_start: float = 0.0
    """Wall-clock time the first attempt's process started."""
    last_seen: float = 0.0
    """Wall-clock time of the latest mark."""
    max_step: int = 0
    """The highest step any attempt finished."""
    launches: int = 0
    """Processes (rank 0) that have trained this run: 1 + restarts + relaunches."""
    ended: str = ""
    """How the latest launch ended: "" (it did not say: killed, hung, crashed), done, time_limit, preempted."""
    saves: int = 0
    """Checkpoints written (every launch): checkpoint_save over saves is a save's cost (pretrain.train.cadence)."""

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def goodput(self) -> float:
        return self.parts["productive"] / self.total if self.total > 0 else 0.0

    def young_interval_steps(self) -> int:
        """Young's checkpoint interval (pretrain.train.cadence) at this run's own save cost, step time and
        failure rate (the wall time over the launches after the first); 0 until the run has been
        interrupted, has saved and has trained."""
        save_s, productive = self.parts["checkpoint_save"], self.parts["productive"]
        if self.launches < 2 or self.saves == 0 or self.max_step == 0 or save_s <= 0 or productive <= 0:
            return 0
        return checkpoint_interval_steps(save_s / self.saves, self.total / (self.launches - 1),
                                         productive / self.max_step)

    def summary(self) -> dict:
        return {"goodput": round(self.goodput, 4), "wall_s": round(self.total, 3), "launches": self.launches,
                "saves": self.saves, "steps": self.max_step, "young_interval_steps": self.young_interval_steps(),
                **{f"{k}_s": round(v, 3) for k, v in self.parts.items()}}

    @classmethod
    def load(cls, path: Path) -> Ledger | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        parts = dict.fromkeys(PARTS, 0.0) | {k: float(v) for k, v in raw.get("parts", {}).items() if k in PARTS}
        return cls(parts, float(raw.get("first_start", 0.0)), float(raw.get("last_seen", 0.0)),
                   int(raw.get("max_step", 0)), int(raw.get("launches", 0)), str(raw.get("ended", "")),
                   int(raw.get("saves", 0)))

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


class Clock:
    """Marks time into a ledger: ``mark(part)`` adds the seconds since the previous mark to ``part``."""

    def __init__(self, ledger: Ledger, since: float):
        self.ledger, self.last = ledger, since

    def mark(self, part: str) -> float:
        now = time.time()
        spent = max(0.0, now - self.last)
        self.ledger.parts[part] += spent
        self.last = self.ledger.last_seen = now
        return spent


def open_ledger(path: Path, started: float, launcher_started: float | None = None) -> tuple[Ledger, float]:
    """This launch's ledger (the run's so far, if any; --fresh deletes it) and the seconds it counts as
    lost: from the previous launch's last record to this process's start, when that launch did not finish.
    A new ledger starts at ``launcher_started`` when given (torchrun's own start-up is the run's too)."""
    old = Ledger.load(path)
    if old is None:
        first = min(started, launcher_started or started)
        return Ledger(first_start=first, last_seen=first, launches=1), 0.0
    lost = max(0.0, started - old.last_seen) if old.ended in ("", "preempted") else 0.0
    old.parts["lost"] += lost
    old.launches += 1
    old.ended = ""
    old.last_seen = started
    return old, lost


__all__ = ["PARTS", "Clock", "Ledger", "open_ledger", "process_start_time", "set_start", "take_start"]
