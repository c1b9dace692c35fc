"""Benchmark scores during training: lm-eval multiple-choice tasks scored in process by log-likelihood.

``TaskScorer(tasks, tokenizer, limit, paths)`` builds each task's requests once (lm-eval's own task
configs, prompts and few-shot setup; at most ``limit`` documents per task) and ``score(model)`` runs them
through the same adapter as ``pretrain eval --lm-eval`` (pretrain.eval.lm_harness.PretrainLM), then turns
each document's results into metrics with the task's own ``process_results`` and aggregation. So a score
during training equals ``pretrain eval`` on the same weights.

``score(model, rank, world)`` scores documents rank, rank + world, ... and gathers the per-document
metrics from every process (torch.distributed), so N processes share the work and agree on the result.

Keys: ``task/<name>/<metric>`` (acc, acc_norm, ...), ``task/<name>/centered_acc`` (accuracy rescaled so
chance is 0 and perfect is 1, chance being the mean of 1/choices over the task's documents) and, with
two tasks or more, ``tasks/centered_acc``: their mean, as nanochat's CORE metric aggregates its tasks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pretrain.configlib import ConfigError

SCORED_TYPES = ("multiple_choice", "loglikelihood")
"""Output types that log-likelihoods alone can score (no generation inside the training loop)."""


@dataclass
class _Doc:
    doc_id: int
    doc: Any
    requests: list = field(default_factory=list)


@dataclass
class _Task:
    name: str
    task: Any
    docs: list[_Doc]


def task_manager(tasks: list[str], paths: list[str]):
    """lm-eval's TaskManager over the bundled tasks and ``paths``; lm-eval's own catalogue is indexed
    (slow: most of a minute) only when a task is in neither."""
    from lm_eval.tasks import TaskManager

    from pretrain.eval.lm_harness import TASKS_DIR

    include = [str(TASKS_DIR), *[str(Path(p)) for p in paths]]
    manager = TaskManager(include_path=include, include_defaults=False)
    if all(t in manager.all_tasks for t in tasks):
        return manager
    return TaskManager(include_path=include, include_defaults=True)


def _leaves(task_dict: dict) -> list[tuple[str, Any]]:
    out = []
    for key, value in task_dict.items():
        if isinstance(value, dict):
            out += _leaves(value)
        else:
            out.append((getattr(key, "group_name", key) if not isinstance(key, str) else key, value))
    return out


class TaskScorer:
    def __init__(self, tasks: list[str], tokenizer: Any, limit: int = 0, paths: list[str] | None = None,
                 batch_size: int = 8):
        try:
            from lm_eval.tasks import get_task_dict
        except ImportError:
            raise ConfigError("eval.tasks", "needs lm-eval: pip install 'pretrain[eval]'") from None
        for p in paths or []:
            if not Path(p).exists():
                raise ConfigError("eval.task_paths", f"{p}: no such file or directory")
        manager = task_manager(list(tasks), list(paths or []))
        missing = [t for t in tasks if t not in manager.all_tasks]
        if missing:
            raise ConfigError("eval.tasks", f"unknown lm-eval task {missing[0]!r} (bundled: pretrain_offline_mc; "
                              "add a folder of task YAML files to eval.task_paths)")
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.tasks: list[_Task] = []
        for name, task in _leaves(get_task_dict(list(tasks), manager)):
            if task.OUTPUT_TYPE not in SCORED_TYPES:
                raise ConfigError("eval.tasks", f"{name!r} is a {task.OUTPUT_TYPE} task; during training only "
                                  f"log-likelihood tasks ({', '.join(SCORED_TYPES)}) run (use `pretrain eval "
                                  "--lm-eval` for the others)")
            task.build_all_requests(limit=limit or None, rank=0, world_size=1)
            by_doc: dict[int, _Doc] = {}
            for inst in task.instances:
                by_doc.setdefault(inst.doc_id, _Doc(inst.doc_id, inst.doc)).requests.append(inst)
            docs = sorted(by_doc.values(), key=lambda d: d.doc_id)
            for d in docs:
                d.requests.sort(key=lambda r: r.idx)
            self.tasks.append(_Task(name, task, docs))

    def score(self, model: torch.nn.Module, rank: int = 0, world: int = 1,
              collective: bool = False) -> dict[str, float]:
        """Score this process's share of every task's documents; with ``world > 1`` gather the shares
        (every process must call this) and return the full metrics on each. ``collective``: a forward
        pass needs every process (FSDP), so every share is padded to the same number of requests and
        the processes run the same number of batches."""
        from pretrain.eval.lm_harness import PretrainLM

        lm = PretrainLM(model=model, tokenizer=self.tokenizer, device=str(next(model.parameters()).device),
                        batch_size=self.batch_size)
        mine = [(t, d) for t in self.tasks for d in t.docs[rank::world]]
        requests = [r for _, d in mine for r in d.requests]
        n = len(requests)
        if collective and world > 1:
            import torch.distributed as dist

            counts: list = [None] * world
            dist.all_gather_object(counts, n)
            filler = next(r for t in self.tasks for d in t.docs for r in d.requests)
            requests += [filler] * (max(counts) - n)  # scored and dropped: the same batches on every rank
        results = iter(lm.loglikelihood(requests)[:n] if requests else [])
        rows = []  # (task name, doc id, {metric: value}, choices)
        for t, d in mine:
            res = [next(results) for _ in d.requests]
            rows.append((t.name, d.doc_id, t.task.process_results(d.doc, res), len(d.requests)))
        if world > 1:
            import torch.distributed as dist

            gathered: list = [None] * world
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        return self._aggregate(rows)

    def _aggregate(self, rows: list) -> dict[str, float]:
        out: dict[str, float] = {}
        per_task: dict[str, list] = defaultdict(list)
        for row in sorted(rows, key=lambda r: (r[0], r[1])):  # one order whatever the process count
            per_task[row[0]].append(row)
        centered = []
        for t in self.tasks:
            items = per_task.get(t.name, [])
            if not items:
                continue
            aggregation = t.task.aggregation()
            for metric in items[0][2]:
                value = aggregation[metric]([r[2][metric] for r in items])
                out[f"task/{t.name}/{metric}"] = float(value)
            if "acc" in items[0][2]:
                chance = sum(1.0 / max(1, r[3]) for r in items) / len(items)
                c = (out[f"task/{t.name}/acc"] - chance) / (1.0 - chance) if chance < 1 else 0.0
                out[f"task/{t.name}/centered_acc"] = c
                centered.append(c)
        if len(centered) >= 2:
            out["tasks/centered_acc"] = sum(centered) / len(centered)
        return out


__all__ = ["TaskScorer", "task_manager"]
