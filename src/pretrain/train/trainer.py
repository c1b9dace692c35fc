"""The training loop: stages, accumulation, precision, stability, checkpoints, averaging, metrics.

One optimizer step:
  1. the global batch for this step (batch ramp) is split into micro-batches of one global stream; rank
     r of N trains on micro-batches r, r + N, ..., so 1 and N processes see the same data in the same
     steps. A loader with ``shard(rank, world)`` (PackedLoader) builds only those (see
     pretrain.data.loader); any other loader is read whole on every rank and the rest dropped;
  2. each micro-batch's objective is ``ce_sum / T + (aux + mtp) * n / T`` where T is the number of
     target tokens in the *whole* step (all micro-batches, all ranks): the accumulated gradient is
     exactly that of one big batch, however it is cut (not the mean of per-micro-batch means);
  3. gradients are clipped, the step is checked for spikes / NaN, and applied (or skipped, or rewound);
  4. metrics, evaluation, checkpoints and stage transitions happen between steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain import configlib
from pretrain.rundir import RunDir
from pretrain.train import checkpoint as ckpt
from pretrain.train import distributed as distlib
from pretrain.train.averaging import EMA
from pretrain.train.gns import GradientNoiseScale
from pretrain.train.hardware import peak_flops
from pretrain.train.metrics import MetricsLogger, truncate_metrics
from pretrain.train.optim import build_optimizer
from pretrain.train.parallelize import apply_transforms, fp8_unsupported
from pretrain.train.precision import (
    apply_precision_map,
    autocast,
    find_blocks,
    resolve_device,
    resolve_precision,
)
from pretrain.train.schedule import batch_at, lr_batch_scale
from pretrain.train.stability import SpikeDetector
from pretrain.train.stages import Plan, Stage


@dataclass
class TrainResult:
    step: int
    """Optimizer steps completed."""
    tokens: int
    """Tokens trained on (inputs, all processes)."""
    losses: dict[str, float] = field(default_factory=dict)
    """Final numbers: train loss of the last step, val_loss of the final model, ..."""
    final_checkpoint: Path | None = None
    """checkpoints/final/ (None when the run stopped before finishing, e.g. on another rank)."""
    stopped: str = "done"
    """done, or time_limit."""
    history: list[float] = field(default_factory=list)
    """Train loss of every step run in this call (for tests and benchmarks)."""


# A loader factory builds the training stream of a stage: (stage, seed) -> object with next_batch(),
# state_dict(), load_state_dict() and optionally set_progress().
LoaderFactory = Callable[[Stage], Any]
# An evaluator scores the model: (model, seq_len) -> {"val_loss": ..., ...} (an "eval" metrics row).
Evaluator = Callable[[nn.Module, int], dict]
# A needle check: (model, seq_len) -> accuracy in [0, 1], or None when not available.
NeedleCheck = Callable[[nn.Module, int], float | None]


def _to_safe(obj: Any) -> Any:
    """numpy values -> tensors/Python so trainer_state.pt loads with weights_only=True (lossless)."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = [_to_safe(v) for v in obj]
        return out if isinstance(obj, list) else {"__tuple__": out}
    return obj


def _from_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        if set(obj) == {"__tuple__"}:
            return tuple(_from_safe(v) for v in obj["__tuple__"])
        return {k: _from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_safe(v) for v in obj]
    return obj


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": _to_safe(np.random.get_state()), "python": _to_safe(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(_from_safe(state["numpy"]))
    random.setstate(_from_safe(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _lineage_summary(batches: list, limit: int = 16) -> tuple[list[list], int]:
    """The step's documents, first ``limit`` of them, and the total count: [shard, index, record id, source]
    (id and source are looked up in the shard's index; they are left out for streams without shard files)."""
    docs: list[list] = []
    for b in batches:
        for row in getattr(b, "lineage", None) or []:
            for shard, idx in row:
                docs.append([str(shard), int(idx)])
    out = []
    for shard, idx in docs[:limit]:
        entry = [shard, idx]
        try:
            from pretrain.data.shards import lookup

            src = lookup(shard, idx)
            entry += [src.id, src.source]
        except (OSError, ValueError, IndexError):
            pass  # not a shard file (an in-memory stream): the pair is all there is
        out.append(entry)
    return out, len(docs)


class Trainer:
    def __init__(
        self,
        cfg,
        run_dir: RunDir | Path,
        model: nn.Module,
        make_loader: LoaderFactory,
        evaluator: Evaluator | None = None,
        needle: NeedleCheck | None = None,
        tokenizer_path: Path | None = None,
        fresh: bool = False,
        progress: bool = True,
    ):
        self.cfg = cfg
        self.t = cfg.train
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.make_loader = make_loader
        self.evaluator = evaluator
        self.needle = needle
        self.tokenizer_path = tokenizer_path
        self.fresh = fresh
        self.eval_interval = int(getattr(getattr(cfg, "eval", None), "interval", 0) or 0)

        # ---- devices, processes, precision
        self.dist = distlib.init(self.t.distributed, "cuda" if torch.cuda.is_available() and self.t.device != "cpu" else "cpu")
        self.device = resolve_device(self.t.device, self.dist.local_rank)
        self.precision = resolve_precision(self.t.precision, self.device)
        if self.t.fp8 and (why := fp8_unsupported(self.device)):  # before anything is written
            raise configlib.ConfigError("train.fp8", why)
        per_step = self.t.micro_batch * self.dist.world
        if self.t.global_batch and self.t.global_batch % per_step:
            raise configlib.ConfigError("train.global_batch", f"{self.t.global_batch} sequences do not split into "
                                        f"micro_batch={self.t.micro_batch} x {self.dist.world} processes")
        for i, p in enumerate(self.t.batch_ramp):
            if p.batch % per_step:
                raise configlib.ConfigError(f"train.batch_ramp[{i}].batch", f"{p.batch} sequences do not split into "
                                            f"micro_batch={self.t.micro_batch} x {self.dist.world} processes")
        self.run.root.mkdir(parents=True, exist_ok=True)
        self._progress = progress and self.dist.is_main
        self.log = MetricsLogger(self.run.root, enabled=self.dist.is_main, progress=self._progress)

        # ---- model
        self.raw = model.to(self.device)
        self.base_model_cfg = _copy_cfg(getattr(model, "cfg", None))
        self.fp32_modules = [] if self.dist.mode == "fsdp" else apply_precision_map(self.raw, self.t.fp32_modules, self.precision)
        scope = self.t.compile_scope if self.t.compile else "none"
        self.transforms = apply_transforms(self.raw, self.device, self.t.fp8, self.t.activation_checkpointing, scope)
        self.model = distlib.wrap(self.raw, self.dist, self.device, self.precision, self.t.reduce_dtype, find_blocks(self.raw))
        self.forward_model = torch.compile(self.model) if scope == "model" else self.model
        self.opt = build_optimizer(self.raw, self.t)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

        # ---- run state (everything here goes into trainer_state.pt)
        self.step = 0
        self.tokens = 0
        self.train_time = 0.0
        self.plan_total: int | None = None  # fixed by the time budget, when there is one
        self.plan = Plan(self.t)
        self.detector = SpikeDetector(self.t.spike.window, self.t.spike.min_history, self.t.spike.sigma,
                                     grad_norm=self.t.spike.grad_norm)
        self.gns = GradientNoiseScale()
        self.ema: EMA | None = None
        self.skip_steps: set[int] = set()
        self.rewinds = 0
        self.consecutive_skips = 0
        self.gate_checks: dict[str, int] = {}
        self.short_val_ref: float | None = None
        self.stage: Stage | None = None
        self.loader = None
        self.history: list[float] = []
        self.last_loss = float("nan")
        self._started = False

        flops = getattr(self.raw, "flops_per_token", None)
        self._flops_per_token = flops if callable(flops) else (lambda T: 6.0 * sum(p.numel() for p in self.raw.parameters()))
        self.peak, self.peak_source = peak_flops(self.device, self.precision != "fp32", self.t.peak_flops)

    # ------------------------------------------------------------------------------------ helpers
    def event(self, name: str, detail: str = "", **extra) -> None:
        self.log.log({"type": "event", "step": self.step, "tokens": self.tokens, "event": name, "detail": detail, **extra})

    def base_global_batch(self) -> int:
        """Sequences (at train.seq_len) per optimizer step before any ramp."""
        return self.t.global_batch or self.t.micro_batch * self.t.grad_accum * self.dist.world

    def micro_steps(self, stage: Stage) -> tuple[int, int]:
        """(global micro-batches per step, global batch in sequences at train.seq_len) for the current step."""
        base = self.base_global_batch()
        ramp = [(p.tokens, p.batch) for p in self.t.batch_ramp]
        batch = batch_at(self.tokens, base, ramp)
        step_tokens = batch * self.t.seq_len
        per_micro = stage.micro_batch * stage.seq_len * self.dist.world
        n = max(1, round(step_tokens / per_micro))
        return n * self.dist.world, batch

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        if self.dist.mode == "fsdp" and self.dist.enabled:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            # Every rank gets the full tensors (cpu_offload would keep them on rank 0 only), so
            # finalize and averaging run the same code on all ranks.
            sd = get_model_state_dict(self.raw, options=StateDictOptions(full_state_dict=True))
            return {k: v.detach().to("cpu") for k, v in sd.items()}
        return {k: v.detach() for k, v in self.raw.state_dict().items()}

    def _set_full_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        if self.dist.mode == "fsdp" and self.dist.enabled:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(self.raw, sd, options=StateDictOptions(full_state_dict=True))
        else:
            self.raw.load_state_dict(sd)

    # ------------------------------------------------------------------------------------- stages
    def enter_stage(self, stage: Stage, loader_state: dict | None = None) -> None:
        """Apply a stage's model settings (context, RoPE scaling) and build its data stream."""
        self.stage = stage
        sc = stage.cfg
        mcfg = getattr(self.raw, "cfg", None)
        if mcfg is not None and hasattr(self.raw, "rope") and self.base_model_cfg is not None:
            self._apply_rope(stage)
        self.loader = self.make_loader(stage)
        self.per_rank_data = self.dist.enabled and hasattr(self.loader, "shard")
        if self.per_rank_data:
            self.loader.shard(self.dist.rank, self.dist.world)
        if loader_state is not None:
            self.loader.load_state_dict(_from_safe(loader_state))
        detail = f"{stage.kind} seq_len={stage.seq_len} micro_batch={stage.micro_batch} steps={stage.steps}"
        if sc.mixture:
            detail += f" mixture={sc.mixture}"
        if loader_state is None:
            self.event("stage_start", detail, stage=stage.name)

    def _apply_rope(self, stage: Stage) -> None:
        """Set max_seq_len and RoPE scaling for the stage and rebuild the rotary tables (no weights change)."""
        from pretrain.model.config import RopeScalingConfig
        from pretrain.model.rope import RotaryEmbedding

        base = self.base_model_cfg
        mcfg = self.raw.cfg
        seq = stage.seq_len
        if stage.rope_scaling and stage.rope_scaling != "none":
            factor = stage.rope_factor or max(1.0, seq / base.max_seq_len)
            mcfg.rope_scaling = RopeScalingConfig(**{
                **configlib.to_dict(base.rope_scaling), "type": stage.rope_scaling, "factor": factor,
                "original_max_position": base.rope_scaling.original_max_position or base.max_seq_len,
            })
        elif stage.rope_scaling == "none":
            mcfg.rope_scaling = RopeScalingConfig()
        else:
            mcfg.rope_scaling = _copy_cfg(base.rope_scaling)
        mcfg.max_seq_len = max(base.max_seq_len, seq)
        rope = RotaryEmbedding(mcfg).to(self.device)
        self.raw.rope = rope

    def _stage_seq_len(self) -> int:
        return self.stage.seq_len if self.stage else self.t.seq_len

    def _step_lineage(self, batches: list) -> list:
        """The step's micro-batches in global order for lineage (gathered from all ranks when per-rank)."""
        if not self.per_rank_data:
            return batches
        import torch.distributed as dist

        world = self.dist.world
        parts: list = [None] * world
        dist.all_gather_object(parts, [b.lineage for b in batches])
        return [SimpleNamespace(lineage=parts[i % world][i // world]) for i in range(world * len(batches))]

    # ------------------------------------------------------------------------------------ one step
    def train_step(self, stage: Stage) -> dict:
        n_micro, batch = self.micro_steps(stage)
        world, rank = self.dist.world, self.dist.rank
        if hasattr(self.loader, "set_progress"):
            self.loader.set_progress(self.step / max(1, self.plan.total))
        if self.per_rank_data:  # this rank's share only; the loader counts every rank's targets (no sync)
            mine, total_targets = [], 0
            for _ in range(n_micro // world):
                mine.append(self.loader.next_batch())
                total_targets += self.loader.round_targets
            step_tokens = int(sum(b.input_ids.numel() for b in mine)) * world
            all_batches = mine
        else:
            all_batches = [self.loader.next_batch() for _ in range(n_micro)]
            mine = all_batches[rank::world]
            total_targets = int(sum(int((b.targets != -100).sum()) for b in all_batches))
            step_tokens = int(sum(b.input_ids.numel() for b in all_batches))
        lr_factor = self.plan.lr_factor(self.step) * lr_batch_scale(batch, self.base_global_batch(), self.t.lr_batch_scaling)
        self.opt.set_lr_factor(lr_factor)
        log_step = (self.step + 1) % self.t.log_interval == 0 or self.step + 1 >= self.plan.total
        info: dict[str, Any] = {"lr": lr_factor * self.t.lr, "tokens_in_step": step_tokens, "batch": batch,
                                "micro_steps": len(mine)}

        if self.step in self.skip_steps:
            lineage, n_docs = _lineage_summary(self._step_lineage(all_batches))
            self.event("skip", f"batches of step {self.step + 1} skipped after a rewind ({n_docs} documents)",
                       lineage=lineage)
            info.update(skipped=True, loss=float("nan"), grad_norm=float("nan"))
            return info

        mcfg = getattr(self.raw, "cfg", None)
        if mcfg is not None and getattr(getattr(mcfg, "mtp", None), "depth", 0) and hasattr(self.raw, "set_mtp_weight"):
            self.raw.set_mtp_weight(mcfg.mtp.weight_at(self.step / max(1, self.plan.total)))

        sums = torch.zeros(4, dtype=torch.float64)  # ce_sum, n_tokens, aux * n, mtp * n
        domain_sums: dict[str, list[float]] = {}
        metric_sums: dict[str, float] = {}
        small_sq = None
        use_doc_mask = stage.cfg.doc_mask
        for i, b in enumerate(mine):
            last = i == len(mine) - 1
            input_ids = b.input_ids.to(self.device, non_blocking=True)
            targets = b.targets.to(self.device, non_blocking=True)
            doc_ids = b.doc_ids.to(self.device, non_blocking=True) if use_doc_mask and b.doc_ids is not None else None
            # Forward and backward both inside the no-sync context (DDP decides in forward, FSDP in backward).
            with distlib.no_grad_sync(self.model, self.dist, sync=last):
                with autocast(self.precision, self.device):
                    out = self.forward_model(input_ids, targets, doc_ids)
                n = out.n_tokens
                aux = out.aux_loss if out.aux_loss is not None else torch.zeros((), device=self.device)
                mtp = out.mtp_loss if out.mtp_loss is not None else torch.zeros((), device=self.device)
                # Normalise by the step's target tokens (all micro-batches, all ranks); x world because
                # DDP/FSDP average gradients over ranks where we want their sum.
                objective = (out.ce_sum + (aux + mtp) * n) / max(1, total_targets) * world
                if self.scaler is not None:
                    self.scaler.scale(objective).backward()
                else:
                    objective.backward()
            sums += torch.stack([out.ce_sum.detach().double().cpu(), n.detach().double().cpu(),
                                 (aux.detach() * n).double().cpu(), (mtp.detach() * n).double().cpu()])
            for k, v in (out.metrics or {}).items():
                metric_sums[k] = metric_sums.get(k, 0.0) + float(v) / len(mine)
            if log_step and out.logits is not None and getattr(b, "domains", None):
                with torch.no_grad():
                    ce = F.cross_entropy(out.logits.float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
                    row_ce = ce.sum(1).double().cpu().tolist()
                    row_n = (targets != -100).sum(1).cpu().tolist()
                for d, c, k in zip(b.domains, row_ce, row_n, strict=True):
                    acc = domain_sums.setdefault(d, [0.0, 0.0])
                    acc[0] += c
                    acc[1] += k
            if (log_step and self.t.gns and i == 0 and len(mine) > 1 and self.dist.mode != "fsdp"
                    and self.scaler is None):
                # |G_small|^2 of this rank's first micro-batch: the accumulated gradient so far, rescaled
                # from "summed over T targets" to a per-token mean over the micro-batch's own targets.
                g = _grad_sq(self.params)
                small_sq = (g * (total_targets / (world * max(1, int(n)))) ** 2, int(n))
            del out

        # ---- global statistics (identical on every rank)
        if self.dist.enabled:
            vec = distlib.all_reduce_sum(sums.tolist(), self.dist, self.device)
            sums = torch.tensor(vec, dtype=torch.float64)
            if log_step:
                import torch.distributed as dist

                gathered: list = [None] * world
                dist.all_gather_object(gathered, domain_sums)
                domain_sums = {}
                for part in gathered:
                    for d, (c, k) in part.items():
                        acc = domain_sums.setdefault(d, [0.0, 0.0])
                        acc[0] += c
                        acc[1] += k
        ce_sum, n_tok, aux_sum, mtp_sum = sums.tolist()
        loss = ce_sum / max(1.0, n_tok)
        info.update(metric_sums)
        info["loss"] = loss
        if aux_sum:
            info["aux_loss"] = aux_sum / max(1.0, n_tok)
        if mtp_sum:
            info["mtp_loss"] = mtp_sum / max(1.0, n_tok)
        for d, (c, k) in sorted(domain_sums.items()):
            if k:
                info[f"loss/{d}"] = c / k

        # ---- clip, check, apply
        if self.scaler is not None:
            for o in self.opt.optimizers:
                self.scaler.unscale_(o)
        clip = self.t.grad_clip if self.t.grad_clip > 0 else float("inf")
        gn = torch.nn.utils.clip_grad_norm_(self.params, clip, foreach=True)
        if hasattr(gn, "full_tensor"):
            gn = gn.full_tensor()
        grad_norm = float(gn)
        info["grad_norm"] = grad_norm
        if small_sq is not None and math.isfinite(grad_norm):
            # |G_big|^2 before clipping (clip scales the gradients, not the norm we measured).
            big_sq = grad_norm**2
            b_small = small_sq[1]
            est = self.gns.update(small_sq[0], b_small, big_sq, total_targets)
            if est is not None:
                info["gns_tokens"] = est

        verdict = None
        if self.t.spike.policy != "off" and not (self.scaler is not None and not math.isfinite(grad_norm)):
            verdict = self.detector.check(loss, grad_norm)
        if verdict is not None and verdict.spike:
            lineage, n_docs = _lineage_summary(self._step_lineage(all_batches))
            self.event("spike", f"step {self.step + 1}: {verdict.reason}; {n_docs} documents in the step",
                       lineage=lineage, loss=loss, grad_norm=grad_norm)
            info["spike"] = verdict.reason
            if self.t.spike.policy in ("skip", "rewind"):
                self.opt.zero_grad()
                info["skipped"] = True
                info["lineage"] = lineage
                return info
        if self.scaler is not None:
            for o in self.opt.optimizers:
                self.scaler.step(o)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad()
        if hasattr(self.raw, "update_router_biases"):
            self.raw.update_router_biases()
        if self.ema is not None:
            self.ema.update(self.raw)
        self.consecutive_skips = 0
        return info

    # ------------------------------------------------------------------------------------ checkpoints
    def trainer_state(self) -> dict:
        state = {
            "step": self.step,
            "tokens": self.tokens,
            "train_time_s": self.train_time,
            "plan_total": self.plan_total,
            "extensions": dict(self.plan.extensions),
            "max_steps": self.t.max_steps,
            "stage": self.stage.name if self.stage else "",
            "loader": _to_safe(self.loader.state_dict()) if self.loader is not None else {},
            "detector": self.detector.state_dict(),
            "gns": self.gns.state_dict(),
            "skip_steps": sorted(self.skip_steps),
            "rewinds": self.rewinds,
            "gate_checks": dict(self.gate_checks),
            "short_val_ref": self.short_val_ref,
            "rng": _rng_state(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if not (self.dist.mode == "fsdp" and self.dist.enabled):
            state["optimizer"] = self.opt.state_dict()
        return state

    def save(self, name: str | None = None, milestone: bool = False, model_state: dict | None = None,
             extra_meta: dict | None = None) -> Path:
        name = name or ckpt.step_dir(self.run.checkpoints, self.step).name
        sd = model_state if model_state is not None else (
            self._full_state_dict() if self.dist.mode == "fsdp" and self.dist.enabled else None)
        state = self.trainer_state()
        fsdp = self.dist.mode == "fsdp" and self.dist.enabled

        def write(tmp: Path) -> None:
            if fsdp:
                import torch.distributed.checkpoint as dcp
                from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

                osd = get_optimizer_state_dict(self.raw, self.opt.optimizers[0])
                dcp.save({"optim": osd}, checkpoint_id=str(tmp / "optim"))
            if not self.dist.is_main:
                return
            ckpt.save_model_weights(self.raw, tmp, state_dict=sd)
            ckpt.save_trainer_state(state, tmp / "trainer_state.pt")
            from pretrain.config import save as save_config

            save_config(self.cfg, tmp / "config.toml")
            if self.tokenizer_path is not None and Path(self.tokenizer_path).is_file():
                shutil.copyfile(self.tokenizer_path, tmp / "tokenizer.json")

        mixture = configlib.to_dict(self.cfg.data.mixture) if hasattr(self.cfg, "data") else {}
        stage_mix = self.stage.cfg.mixture if self.stage else {}
        meta = {
            "step": self.step,
            "tokens": self.tokens,
            "stage": self.stage.name if self.stage else "",
            "time": time.time(),
            "train_time_s": self.train_time,
            "milestone": milestone,
            "world_size": self.dist.world,
            "distributed": self.dist.mode,
            "mixture": mixture,
            "stage_mixture": stage_mix,
            "mixture_version": hashlib.sha256(json.dumps([mixture, stage_mix], sort_keys=True).encode()).hexdigest()[:16],
            **(extra_meta or {}),
        }
        path = ckpt.write_checkpoint(self.run.checkpoints, name, write, meta, self.dist.is_main, self.dist.barrier)
        if self.dist.is_main and name.startswith("step_"):
            keep = self.t.keep_last
            if self.stage is not None and self.stage.kind == "anneal":
                keep = max(keep, self.t.averaging.last_n)
            ckpt.prune(self.run.checkpoints, keep)
        self.event("checkpoint", str(path.name))
        return path

    def load(self, path: Path) -> None:
        """Restore model, optimizer, loader, RNG and run counters from a checkpoint directory."""
        self._check_same_model(path)
        state = ckpt.load_trainer_state(path / "trainer_state.pt")
        self.step = int(state["step"])
        self.tokens = int(state["tokens"])
        self.train_time = float(state["train_time_s"])
        self.plan_total = state.get("plan_total")
        self.plan = Plan(self.t, self.plan_total, state.get("extensions", {}))
        self.detector.load_state_dict(state["detector"])
        self.gns.load_state_dict(state["gns"])
        self.skip_steps |= set(int(s) for s in state.get("skip_steps", []))
        self.rewinds = max(self.rewinds, int(state.get("rewinds", 0)))
        self.gate_checks = dict(state.get("gate_checks", {}))
        self.short_val_ref = state.get("short_val_ref")
        # Model weights first (the RoPE tables are rebuilt by enter_stage, they are not weights).
        sd = ckpt.load_model_weights(self.raw, path)
        self._set_full_state_dict(sd)
        if "optimizer" in state:
            self.opt.load_state_dict(state["optimizer"])
        else:
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import (
                get_optimizer_state_dict,
                set_optimizer_state_dict,
            )

            osd = get_optimizer_state_dict(self.raw, self.opt.optimizers[0])
            holder = {"optim": osd}
            dcp.load(holder, checkpoint_id=str(path / "optim"))
            set_optimizer_state_dict(self.raw, self.opt.optimizers[0], holder["optim"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.ema = None
        if "ema" in state:
            self.ema = EMA.__new__(EMA)
            self.ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"])
        stage = self.plan.stage_at(self.step)
        # A checkpoint taken at a stage's end belongs to that stage; the next stage starts a fresh stream.
        loader_state = state.get("loader") if state.get("stage", "") == stage.name else None
        self.enter_stage(stage, loader_state=loader_state)
        if int(state.get("max_steps", self.t.max_steps)) != self.t.max_steps and self.t.schedule != "wsd":
            self.event("schedule_changed", f"max_steps {state.get('max_steps')} -> {self.t.max_steps}: the "
                       f"{self.t.schedule} LR curve differs from the one the earlier steps followed (WSD would not)")

    def _check_same_model(self, path: Path) -> None:
        """Refuse, in one line, to resume a checkpoint of a different model shape."""
        saved_file = path / "model_config.json"
        if self.base_model_cfg is None or not saved_file.is_file():
            return
        saved = json.loads(saved_file.read_text())
        current = configlib.to_dict(self.base_model_cfg)
        for key in sorted(set(saved) | set(current)):
            if key in ("max_seq_len", "rope_scaling"):  # stages change these
                continue
            if saved.get(key) != current.get(key):
                raise ValueError(f"{path}: checkpoint has model.{key}={saved.get(key)!r} but the config says "
                                 f"{current.get(key)!r}; use --fresh or another --run-dir")

    # ------------------------------------------------------------------------------------ evaluation
    def evaluate(self, tag: str = "", seq_len: int | None = None) -> dict | None:
        if self.evaluator is None:
            return None
        if not (self.dist.is_main or self.dist.mode == "fsdp"):
            self.dist.barrier()
            return None
        was = self.raw.training
        self.raw.eval()
        try:
            row = self.evaluator(self.raw, seq_len or self._stage_seq_len())
        finally:
            self.raw.train(was)
        row = {"type": "eval", "step": self.step, "tokens": self.tokens, "stage": self.stage.name if self.stage else "",
               **({"model": tag} if tag else {}), **row}
        self.log.log(row)
        if self.dist.mode != "fsdp":
            self.dist.barrier()
        return row

    def _broadcast(self, value):
        if not self.dist.enabled:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def end_stage(self, stage: Stage) -> bool:
        """Stage-end evaluation and the long-context gate; returns True if the stage was extended."""
        row = self.evaluate(seq_len=stage.seq_len)
        if stage.kind == "bulk":
            short = row.get("val_loss") if row else None
            self.short_val_ref = self._broadcast(short)
        if stage.kind != "long_context" or not stage.cfg.gate.enabled:
            return False
        gate = stage.cfg.gate
        reasons = []
        if self.short_val_ref is not None and self.evaluator is not None:
            short_row = self.evaluate(tag="short_context", seq_len=self.t.seq_len)
            short = self._broadcast(short_row.get("val_loss") if short_row else None)
            if short is not None and short > self.short_val_ref * (1.0 + gate.short_loss_tolerance):
                reasons.append(f"short-context val loss {short:.4f} > {self.short_val_ref:.4f} x "
                               f"(1 + {gate.short_loss_tolerance:g})")
        if gate.needle:
            acc, why = None, "no needle check configured"
            if self.needle is not None and (self.dist.is_main or self.dist.mode == "fsdp"):
                was = self.raw.training
                self.raw.eval()
                try:
                    acc = self.needle(self.raw, stage.seq_len)
                except ValueError as exc:  # e.g. a context too short to hold needle and question
                    why = str(exc)
                finally:
                    self.raw.train(was)
            acc = self._broadcast(acc)
            if acc is None:
                self.event("gate", f"needle-in-a-haystack unavailable ({why}); {stage.name} gated on "
                           "short-context loss only")
            else:
                self.log.log({"type": "eval", "step": self.step, "tokens": self.tokens, "stage": stage.name,
                              "needle_accuracy": acc, "needle_seq_len": stage.seq_len})
                if acc < gate.needle_min_accuracy:
                    reasons.append(f"needle accuracy {acc:.2f} < {gate.needle_min_accuracy:.2f} at {stage.seq_len}")
        if not reasons:
            self.event("gate_pass", f"{stage.name}: advance")
            return False
        checks = self.gate_checks.get(stage.name, 0)
        if checks >= gate.max_extensions:
            self.event("gate_giveup", f"{stage.name}: {'; '.join(reasons)}; advancing after {checks} extensions")
            return False
        extra = gate.extra_steps or max(1, stage.planned // 4)
        self.gate_checks[stage.name] = checks + 1
        self.plan = self.plan.extend(stage.name, extra)
        self.stage = self.plan.stage_at(self.step)
        self.event("gate_extend", f"{stage.name}: {'; '.join(reasons)}; +{extra} steps")
        return True

    def rewind(self, spike_step: int) -> bool:
        """Reload the last good checkpoint and mark the spike's batches to be skipped; False if none exists."""
        target = ckpt.latest_checkpoint(self.run.checkpoints)
        if target is None or ckpt.read_meta(target)["step"] > spike_step:
            return False
        self.rewinds += 1
        if self.rewinds > self.t.spike.max_rewinds:
            raise RuntimeError(f"loss spikes: {self.rewinds} rewinds exceed train.spike.max_rewinds="
                               f"{self.t.spike.max_rewinds}; the run is diverging (lower train.lr?)")
        skips, rewinds = set(self.skip_steps) | {spike_step}, self.rewinds
        self.load(target)
        self.skip_steps, self.rewinds = skips, rewinds
        self.event("rewind", f"to {target.name} after a spike at step {spike_step + 1}; its batches will be skipped")
        return True

    # ------------------------------------------------------------------------------------ finishing
    def finalize(self, last_loss: float) -> tuple[Path, dict]:
        """Choose the final model (raw, EMA or last-N average), evaluate the candidates, save checkpoints/final."""
        av = self.t.averaging
        raw_sd = self._full_state_dict()
        raw_sd = {k: v.clone() for k, v in raw_sd.items()}
        candidates: dict[str, dict] = {"raw": raw_sd}
        if self.ema is not None and self.ema.updates > 0:
            candidates["ema"] = self.ema.averaged_state(self.raw)
        anneal = [s for s in self.plan.stages if s.kind == "anneal"]
        if av.last_n >= 2 and anneal:
            start = anneal[0].start
            cps = [p for p in ckpt.list_checkpoints(self.run.checkpoints) if ckpt.read_meta(p)["step"] > start]
            cps = cps[-av.last_n:]
            if len(cps) >= 2:
                avg = ckpt.average_state_dicts(cps)
                full = {k: avg.get(k, v) for k, v in raw_sd.items()}
                candidates["last_n"] = full
                self.event("average", f"mean of {len(cps)} checkpoints: {', '.join(p.name for p in cps)}")
        scores: dict[str, float] = {}
        if len(candidates) > 1 and self.evaluator is not None:
            for name, sd in candidates.items():
                self._set_full_state_dict(sd)
                row = self.evaluate(tag=name)
                val = self._broadcast(row.get("val_loss") if row else None)
                if val is not None:
                    scores[name] = val
        choice = av.select
        if choice == "best":
            choice = min(scores, key=scores.get) if scores else ("last_n" if "last_n" in candidates else
                                                                  "ema" if "ema" in candidates else "raw")
        if choice not in candidates:
            self.event("average", f"averaging.select={choice!r} unavailable (no such candidate); using raw")
            choice = "raw"
        self._set_full_state_dict(candidates[choice])
        row = self.evaluate(tag="final") if len(candidates) == 1 else None
        final_val = scores.get(choice, self._broadcast(row.get("val_loss") if row else None))
        path = self.save("final", model_state=candidates[choice] if choice != "raw" else None,
                         extra_meta={"selected": choice, "candidates": scores, "final_val_loss": final_val})
        # Training state stays the raw iterate (a resumed/extended run continues from it).
        self._set_full_state_dict(raw_sd)
        losses = {"train_loss": last_loss}
        if final_val is not None:
            losses["val_loss"] = float(final_val)
        return path, losses

    # ------------------------------------------------------------------------------------ the loop
    def _resume(self) -> None:
        ckroot = self.run.checkpoints
        if self.dist.is_main:
            ckpt.clean_temporaries(ckroot)
        self.dist.barrier()
        latest = None if self.fresh else ckpt.latest_checkpoint(ckroot)
        if latest is None:
            if self.dist.is_main and self.fresh and ckroot.exists():
                shutil.rmtree(ckroot)
                if self.run.metrics.exists():
                    self.run.metrics.unlink()
                self.log.close()
                self.log = MetricsLogger(self.run.root, enabled=True, progress=self._progress)
            self.dist.barrier()
            self._start_event()
            self.enter_stage(self.plan.stage_at(0))
            return
        if self.dist.is_main:
            self.log.close()  # the log is rewritten: reopen it afterwards, or writes go to the old file
            dropped = truncate_metrics(self.run.metrics, ckpt.read_meta(latest)["step"])
            self.log = MetricsLogger(self.run.root, enabled=True, progress=self._progress)
        self.dist.barrier()
        self.load(latest)
        if self.dist.is_main:
            self.event("resume", f"from {latest.name} (dropped {dropped} metrics rows logged after it)")

    def _start_event(self) -> None:
        self._started = True
        self.event("start", f"world={self.dist.world} mode={self.dist.mode} device={self.device} "
                   f"precision={self.precision} params={sum(p.numel() for p in self.raw.parameters()):,} "
                   f"total_steps={self.plan.total}",
                   peak_flops=self.peak, peak_source=self.peak_source, fp32_modules=len(self.fp32_modules),
                   **self.transforms)

    def fit(self) -> TrainResult:
        t = self.t
        self.raw.train()
        self._resume()
        final_dir = self.run.checkpoints / "final"
        if self.step >= self.plan.total and ckpt.is_valid(final_dir) and ckpt.read_meta(final_dir)["step"] == self.step:
            meta = ckpt.read_meta(final_dir)
            self.log.close()
            return TrainResult(self.step, self.tokens, {"val_loss": meta.get("final_val_loss") or float("nan")},
                               final_dir, "done")
        if not self._started:
            self._start_event()
        measuring = t.time_limit_s > 0 and self.plan_total is None
        measure_from, measure_steps, measure_t0 = self.step + 1, max(3, min(10, t.warmup_steps // 2 or 3)), None
        replan = None  # (step, train time) where the first estimate was made; re-planned at 25% and 60%
        replan_at = [0.25, 0.6]
        stopped = "done"
        window_time, window_tokens = 0.0, 0
        wall0 = time.perf_counter()
        base_time = self.train_time
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

        while self.step < self.plan.total:
            if t.time_limit_s > 0 and self.train_time >= t.time_limit_s:
                stopped = "time_limit"
                self.event("time_limit", f"{self.train_time:.1f}s of training wall time spent")
                break
            stage = self.plan.stage_at(self.step)
            if self.stage is None or stage.name != self.stage.name:
                self.enter_stage(stage)
            if stage.kind == "anneal" and self.t.averaging.ema_decay > 0 and self.ema is None:
                self.ema = EMA(self.raw, self.t.averaging.ema_decay)
            t0 = time.perf_counter()
            info = self.train_step(stage)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            dt = time.perf_counter() - t0
            if self.t.compile and not getattr(self, "_compiled_logged", False):
                self._compiled_logged = True
                self.event("compile", f"first step (torch.compile tracing and code generation) took {dt:.1f}s")
            spiked_step = self.step
            self.step += 1
            self.tokens += info["tokens_in_step"]
            window_time += dt
            window_tokens += info["tokens_in_step"]
            self.train_time = base_time + (time.perf_counter() - wall0)
            if not info.get("skipped"):
                self.last_loss = info["loss"]
            self.history.append(info["loss"])

            if info.get("skipped") and "spike" in info:
                self.consecutive_skips += 1
                if self.consecutive_skips > t.spike.max_consecutive_skips:
                    raise RuntimeError(f"{self.consecutive_skips} consecutive steps flagged as spikes "
                                       f"(train.spike.max_consecutive_skips={t.spike.max_consecutive_skips})")
                if t.spike.policy == "rewind":
                    self.step -= 1  # the step did not happen; rewind() restores the counters anyway
                    if self.rewind(spiked_step):
                        wall0, base_time = time.perf_counter(), self.train_time
                        continue
                    self.step += 1
                    self.event("skip", f"no checkpoint at or before step {spiked_step + 1} to rewind to; update skipped",
                               lineage=info.get("lineage", []))
                else:
                    self.event("skip", f"update of step {self.step} skipped", lineage=info.get("lineage", []))

            # ---- time budget: fix the schedule length once the warm-up steps are measured
            if measuring and self.step == measure_from:
                measure_t0 = self.train_time
            if measuring and measure_t0 is not None and self.step == measure_from + measure_steps:
                per_step = (self.train_time - measure_t0) / measure_steps
                left = t.time_limit_s - self.train_time
                total = min(t.max_steps, self.step + max(1, int(0.97 * left / per_step)))
                self.plan_total = max(total, self.step + 1)
                self.plan = Plan(t, self.plan_total, self.plan.extensions)
                measuring = False
                replan = (measure_from, measure_t0)
                self.event("time_budget", f"{per_step * 1000:.1f} ms/step measured over {measure_steps} steps: "
                           f"{self.plan_total} steps fit in {t.time_limit_s:.0f}s", total_steps=self.plan_total)
            elif replan is not None and replan_at and self.train_time >= replan_at[0] * t.time_limit_s:
                # A few warm-up steps misjudge the step time by ~15%; a quarter of the budget does not, and
                # 60% catches later drift. Each re-plan stretches or shrinks what is left of the schedule.
                replan_at.pop(0)
                per_step = (self.train_time - replan[1]) / max(1, self.step - replan[0])
                left = t.time_limit_s - self.train_time
                total = min(t.max_steps, self.step + max(1, int(0.99 * left / per_step)))
                self.plan_total = max(total, self.step + 1)
                self.plan = Plan(t, self.plan_total, self.plan.extensions)
                self.event("time_budget", f"re-planned: {per_step * 1000:.1f} ms/step over {self.step} steps: "
                           f"{self.plan_total} steps fit in {t.time_limit_s:.0f}s", total_steps=self.plan_total)

            if self.step % t.log_interval == 0 or self.step >= self.plan.total:
                tps = window_tokens / window_time if window_time > 0 else 0.0
                seq = stage.seq_len
                mfu = tps * self._flops_per_token(seq) / (self.peak * self.dist.world) if self.peak else None
                row = {"type": "train", "step": self.step, "tokens": self.tokens, "loss": info["loss"],
                       "lr": info["lr"], "grad_norm": info["grad_norm"], "tokens_per_s": tps, "mfu": mfu,
                       "time_s": self.train_time, "stage": stage.name, "seq_len": seq, "batch": info["batch"],
                       "total_steps": self.plan.total, "step_time_s": window_time / max(1, t.log_interval),
                       "mem_mb": _peak_mem_mb(self.device)}
                for k, v in info.items():
                    if k.startswith(("loss/", "moe/", "mtp/")) or k in ("aux_loss", "mtp_loss", "gns_tokens"):
                        row[k] = v
                if info.get("skipped"):
                    row["skipped"] = True
                self.log.log(row)
                window_time, window_tokens = 0.0, 0

            stage_done = self.step == stage.end
            if stage_done and self.end_stage(stage):
                stage_done = False  # extended: keep training this stage
            if self.eval_interval and self.step % self.eval_interval == 0 and not stage_done:
                self.evaluate()
            want_ckpt = (t.checkpoint_interval and self.step % t.checkpoint_interval == 0) or stage_done
            if stage.kind == "anneal" and t.averaging.last_n >= 2:
                interval = t.averaging.interval or max(1, stage.steps // t.averaging.last_n)
                want_ckpt = want_ckpt or (self.step - stage.start) % interval == 0
            if self.step >= self.plan.total:
                want_ckpt = True
            if want_ckpt:
                milestone = stage_done or bool(t.milestone_interval and self.step % t.milestone_interval == 0)
                self.save(milestone=milestone)

        if stopped == "time_limit":
            self.save()
        final, losses = self.finalize(self.last_loss)
        self.event("done", f"{self.step} steps, {self.tokens:,} tokens, {self.train_time:.1f}s; final model: {final.name}")
        self.log.close()
        return TrainResult(self.step, self.tokens, losses, final if self.dist.is_main else None, stopped,
                           self.history)


def _grad_sq(params: list[torch.Tensor]) -> float:
    sq = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
    return float(torch.stack(sq).sum()) if sq else 0.0


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _copy_cfg(cfg):
    if cfg is None:
        return None
    import copy

    return copy.deepcopy(cfg)


def write_run_config(cfg, run: RunDir) -> None:
    from pretrain.config import save

    save(cfg, run.config)


__all__ = ["Trainer", "TrainResult", "write_run_config"]
