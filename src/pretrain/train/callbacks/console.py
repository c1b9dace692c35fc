"""Metrics writing: every ``train.log_interval`` steps (and the last) one ``train`` row goes to
metrics.jsonl, TensorBoard and the live console line (pretrain.train.metrics). The row is the step's
metrics dict as the callbacks before this one left it, plus throughput, MFU and memory: no whitelist, so
a key any callback adds appears in the row."""

from __future__ import annotations

import resource

import torch

from pretrain.train.callbacks import Callback


class MetricsWriter(Callback):
    order = 900  # after user callbacks (default 500), so their keys are in the row

    def __init__(self, log_interval: int):
        self.log_interval = log_interval
        self._t0: float | None = None
        self._tokens0 = 0
        self._step0 = 0

    def _restart_window(self, trainer) -> None:
        self._t0, self._tokens0, self._step0 = trainer.train_time, trainer.tokens, trainer.step

    def on_train_start(self, trainer) -> None:
        self._restart_window(trainer)

    def on_step_end(self, trainer, step: int, metrics: dict) -> None:
        if not trainer.is_log_step(step):
            return
        if self._t0 is None or trainer.train_time < self._t0 or trainer.step <= self._step0:
            # A rewind went back in time: count this one step on its own.
            self._t0, self._tokens0, self._step0 = trainer.train_time, trainer.tokens, trainer.step - 1
        window = trainer.train_time - self._t0
        tps = (trainer.tokens - self._tokens0) / window if window > 0 else 0.0
        seq = trainer.stage.seq_len
        mfu = tps * trainer.flops_per_token(seq) / (trainer.peak * trainer.dist.world) if trainer.peak else None
        row = {"type": "train", "step": step, "tokens": trainer.tokens, **metrics, "tokens_per_s": tps, "mfu": mfu,
               "time_s": trainer.train_time, "stage": trainer.stage.name, "seq_len": seq,
               "total_steps": trainer.plan.total, "step_time_s": window / max(1, trainer.step - self._step0),
               "mem_mb": peak_mem_mb(trainer.device)}
        trainer.log.log(row)
        self._restart_window(trainer)

    # The throughput window restarts on resume: wall time is not part of the run's reproducible state.


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
