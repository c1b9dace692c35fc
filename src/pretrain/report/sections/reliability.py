"""Where a run's wall time went (the trainer's ``goodput`` event, every launch of the run) and what
interrupted it (restarts, hangs, preemptions, failed saves)."""

from __future__ import annotations

from pretrain.report.html import ImageSink, Section, fmt_duration, note, table
from pretrain.report.rundata import RunData

PARTS = {  # the goodput event's keys -> what the reader sees
    "productive_s": "productive steps", "recomputed_s": "steps recomputed after a restart",
    "checkpoint_save_s": "checkpoint save", "checkpoint_load_s": "checkpoint load", "evaluation_s": "evaluation",
    "startup_s": "start-up", "lost_s": "lost between a failure and the restart", "other_s": "other",
}
FAULTS = ("restart", "hang", "preempted", "save_failed", "start_over")


def goodput(run: RunData, sink: ImageSink) -> Section | None:
    events = run.metrics.events
    ends = [e for e in events if e.get("event") == "goodput"]
    if not ends:
        return None
    g = ends[-1]
    wall = float(g.get("wall_s") or 0.0)
    rows = [[label, fmt_duration(float(g.get(k, 0.0))), float(g.get(k, 0.0)) / wall if wall else 0.0]
            for k, label in PARTS.items()]
    body = table(["part", "time", "share"], rows)
    counts = {name: sum(1 for e in events if e.get("event") == name) for name in FAULTS}
    seen = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    body += note(f"{g.get('launches', 1)} launch(es); " + (seen or "no restart, hang, preemption or failed save"))
    return Section("goodput", "Where the time went",
                   body, subtitle=f"goodput {float(g.get('goodput', 0.0)):.1%}: productive steps / wall time "
                   f"{fmt_duration(wall)}, across every launch of the run")
