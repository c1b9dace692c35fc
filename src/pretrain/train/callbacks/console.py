"""Metrics writing: every ``train.log_interval`` steps (and the last) one ``train`` row goes to
metrics.jsonl, TensorBoard and the live console line (pretrain.train.metrics). The row is the step's
metrics dict as the callbacks before this one left it, plus throughput, MFU and memory: no whitelist, so
a key any callback adds appears in the row, as does every key given to ``ctx.metrics.add`` since the
last row (on whatever step it was added)."""

from __future__ import annotations

import resource

import torch

from pretrain.train.callbacks.base import Callback


class MetricsWriter(Callback):
    order = 900  # after user callbacks (default 500), so their keys are in the row

    def __init__(self):
        self._t0: float | None = None
        self._tokens0 = 0
        self._step0 = 0

    def _restart_window(self, ctx) -> None:
        self._t0, self._tokens0, self._step0 = ctx.state.train_time_s, ctx.state.tokens, ctx.state.step

    def on_train_start(self, ctx) -> None:
        self._restart_window(ctx)

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if not ctx.is_log_step(step):
            return
        if self._t0 is None or ctx.state.train_time_s < self._t0 or ctx.state.step <= self._step0:
            # A rewind went back in time: count this one step on its own.
            self._t0, self._tokens0, self._step0 = ctx.state.train_time_s, ctx.state.tokens, ctx.state.step - 1
        window = ctx.state.train_time_s - self._t0
        tps = (ctx.state.tokens - self._tokens0) / window if window > 0 else 0.0
        seq = ctx.stage.seq_len
        mfu = tps * ctx.flops_per_token(seq) / (ctx.peak_flops * ctx.dist.world) if ctx.peak_flops else None
        pending = ctx.metrics.take_pending()
        keys = [k for k, v in pending.items() if torch.is_tensor(v)]
        pending.update(zip(keys, ctx.read_scalars(*(pending[k] for k in keys)), strict=True))
        row = {"type": "train", "step": step, "tokens": ctx.state.tokens, **pending, **metrics, "tokens_per_s": tps,
               "mfu": mfu,
               "time_s": ctx.state.train_time_s, "stage": ctx.stage.name, "seq_len": seq,
               "total_steps": ctx.stage_plan.total, "step_time_s": window / max(1, ctx.state.step - self._step0),
               "mem_mb": peak_mem_mb(ctx.device)}
        ctx.metrics.log(row)
        self._restart_window(ctx)

    # The throughput window restarts on resume: wall time is not part of the run's reproducible state.


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
