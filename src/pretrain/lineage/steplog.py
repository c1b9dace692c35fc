"""The step log: the few facts from which every step's batches can be recomputed exactly.

``<run>/lineage/steps.jsonl`` is written by the training callback (pretrain.train.callbacks.lineage)
on the main process. Nothing in it grows with the tokens trained; its lines are

- ``{"segment": key, "header": {...}}``: what builds a loader again (shard directories, context,
  micro-batch, mixture, loader options, special ids, seed), once per distinct loader;
- ``{"from": s, "segment": key, "start": position}``: that loader served steps s, s+1, ... starting at
  this global position (a stage start, a resume, a rewind);
- ``{"plan": s, "micro": m, "world": w, "total": t}``: from step s on, each step drew m global
  micro-batches on w processes, with training progress (step - 1) / t (written when any changes);
- ``{"progress": s, "value": p}``: step s used progress p where that formula does not give it;
- ``{"skip": s}``: step s drew its batches but did not apply them (skipped batches, a vetoed update);
- ``{"reached": s, "position": position}``: the run completed step s (at checkpoints and at the end);
  the position after it, when known, is the check that the recomputation is exact.

A ``from`` line for step s discards everything logged for steps >= s before it (a resume or a rewind
redid them, and the weights that held them are gone), so the log read back describes exactly the steps
the final weights descend from. The loader itself (pretrain.data.loader) is deterministic in its
position, so pretrain.lineage.replay recomputes the batches from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

STEPS_FILE = "steps.jsonl"


class LineageError(ValueError):
    """A lineage question that cannot be answered: the message is one line naming what is missing."""


def log_path(run: str | Path) -> Path:
    return Path(run) / "lineage" / STEPS_FILE


def segment_key(header: dict) -> str:
    """Stable key of a loader description (the same loader built again gets the same key)."""
    return hashlib.sha1(json.dumps(header, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Start:
    step: int
    segment: str
    position: dict
    """{"batch_index", "progress", "streams": {domain: [epoch, ppos, offset, tokens_served]}}."""


@dataclass
class StepLog:
    path: Path
    segments: dict[str, dict] = field(default_factory=dict)
    starts: list[Start] = field(default_factory=list)
    plans: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(from step, micro, world, total), in step order."""
    progress: dict[int, float] = field(default_factory=dict)
    skips: set[int] = field(default_factory=set)
    reached: dict[int, dict | None] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        return max(self.reached, default=0)

    def _truncate(self, step: int) -> None:
        self.starts = [s for s in self.starts if s.step < step]
        self.plans = [p for p in self.plans if p[0] < step]
        self.progress = {k: v for k, v in self.progress.items() if k < step}
        self.skips = {k for k in self.skips if k < step}
        self.reached = {k: v for k, v in self.reached.items() if k < step}

    def start_of(self, step: int) -> Start:
        """The loader segment that served ``step``."""
        found = [s for s in self.starts if s.step <= step]
        if not found:
            raise LineageError(f"{self.path}: no loader start logged at or before step {step}")
        return found[-1]

    def plan_of(self, step: int) -> tuple[int, int, int]:
        found = [p for p in self.plans if p[0] <= step]
        if not found:
            raise LineageError(f"{self.path}: no batch plan logged at or before step {step}")
        return found[-1][1:]

    def progress_of(self, step: int) -> float:
        if step in self.progress:
            return self.progress[step]
        return (step - 1) / max(1, self.plan_of(step)[2])

    def check_step(self, step: int) -> None:
        if step < 1:
            raise LineageError(f"step {step}: steps are numbered from 1 (as in metrics.jsonl)")
        if step > self.last_step:
            raise LineageError(f"step {step} is beyond the steps run in {self.path.parent.parent} "
                               f"(steps 1..{self.last_step}, up to its last checkpoint)")


def _apply(log: StepLog, obj: dict) -> None:
    if "header" in obj:
        log.segments[obj["segment"]] = obj["header"]
    elif "from" in obj:
        log._truncate(int(obj["from"]))
        log.starts.append(Start(int(obj["from"]), obj["segment"], obj["start"]))
    elif "plan" in obj:
        s = int(obj["plan"])
        log.plans = [p for p in log.plans if p[0] < s] + [(s, int(obj["micro"]), int(obj["world"]), int(obj["total"]))]
    elif "progress" in obj:
        log.progress[int(obj["progress"])] = float(obj["value"])
    elif "skip" in obj:
        log.skips.add(int(obj["skip"]))
    elif "reached" in obj:
        log.reached[int(obj["reached"])] = obj.get("position")
    else:
        raise KeyError("no known key")


def read_log(run: str | Path) -> StepLog:
    """Read a run's step log, keeping only what the final weights descend from."""
    path = log_path(run)
    if not path.is_file():
        raise LineageError(f"{run}: no lineage step log ({path} is missing: the run was trained by a version "
                           f"of pretrain without lineage, or has not trained yet)")
    log = StepLog(path)
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            _apply(log, json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LineageError(f"{path}:{n}: not a step log line ({exc})") from None
    for s in log.starts:
        if s.segment not in log.segments:
            raise LineageError(f"{path}: step {s.step} names loader segment {s.segment}, which has no header line")
    if not log.starts:
        raise LineageError(f"{path}: no step was logged")
    return log


class StepLogWriter:
    """Appends lines (main process only); one open file, flushed per line."""

    def __init__(self, run: str | Path, fresh: bool):
        self.path = log_path(run)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.known: set[str] = set()
        if not fresh and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if '"header"' in line:
                    self.known.add(json.loads(line)["segment"])
        self._f = open(self.path, "w" if fresh else "a", encoding="utf-8")

    def segment(self, header: dict) -> str:
        key = segment_key(header)
        if key not in self.known:
            self.write({"segment": key, "header": header})
            self.known.add(key)
        return key

    def write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
