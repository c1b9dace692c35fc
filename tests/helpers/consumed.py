"""A training callback for the lineage tests: appends what each rank actually trained on, per step
(the lineage of every micro-batch it built), to ``<run>/consumed.rank<r>.jsonl``."""

from __future__ import annotations

import json

from pretrain.train.callbacks import Callback


class Consumed(Callback):
    order = 25

    def _write(self, trainer, obj: dict) -> None:
        with open(trainer.run.root / f"consumed.rank{trainer.dist.rank}.jsonl", "a") as f:
            f.write(json.dumps(obj) + "\n")

    def on_train_start(self, trainer) -> None:
        self._write(trainer, {"start": trainer.step})  # a resume: what this rank logged after it is void

    def on_step_end(self, trainer, step: int, metrics: dict) -> None:
        self._write(trainer, {"step": step, "world": trainer.dist.world,
                              "batches": [[[list(p) for p in row] for row in b.lineage] for b in trainer.batches]})


def read_consumed(run) -> dict[int, dict[tuple[int, int], list]]:
    """{step: {(global micro-batch, row): [[shard, index], ...]}} over every rank, resumes applied."""
    out: dict[int, dict] = {}
    for path in sorted(run.glob("consumed.rank*.jsonl")):
        steps: dict[int, dict] = {}
        for line in path.read_text().splitlines():
            obj = json.loads(line)
            if "start" in obj:
                steps = {s: v for s, v in steps.items() if s <= obj["start"]}
                continue
            rank = int(path.name.split("rank")[1].split(".")[0])
            rows = {}
            for j, batch in enumerate(obj["batches"]):
                for r, row in enumerate(batch):
                    rows[(j * obj["world"] + rank, r)] = row
            steps[obj["step"]] = rows
        for s, rows in steps.items():
            out.setdefault(s, {}).update(rows)
    return out
