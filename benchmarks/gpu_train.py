"""GPU training throughput, MFU and peak memory: ~124M and ~1B models in bf16 (FP8 where the GPU has it)
and long-context rows (T = 8192, 32768) with the document mask, one GPU.

    python benchmarks/gpu_train.py                     # all rows: 124M, 1B, FP8 (Ada/Hopper+), long context
    python benchmarks/gpu_train.py --quick             # 124M only, a few steps
    python benchmarks/gpu_train.py --compile           # also torch.compile per block (train.compile_scope)
    python benchmarks/gpu_train.py --models llama-1b --micro-batch 8 --activation-checkpointing
    python benchmarks/gpu_train.py --dry-run           # tiny shapes on the CPU, same code path (CI runs it)
    python benchmarks/gpu_train.py --time-limit 300 --json rows.json   # a short lease: rows saved as they come

Each row builds a run config from a preset plus the row's overrides (train.fp8, train.compile,
train.compile_scope, train.seq_len...), a Trainer on synthetic token shards (log-normal document
lengths) packed by the real loader, and times optimizer steps of the trainer's own step function after
warm-up, so the figures include loading, packing, the document mask and the trainer's bookkeeping.
MFU = tokens/s x the model's training FLOPs per token (6N + attention) / the GPU's datasheet dense peak
(pretrain.train.hardware.GPU_PEAKS; bf16 peak for FP8 rows too, so FP8 gains show as MFU above bf16's).

Goal: MFU >= 45% in bf16 for the 1B model on one H100/H200. Published points (tokens/s per GPU):
  torchtitan, Llama-3.1-8B, FSDP on 8x H100: 5,762 (eager), 6,667 (torch.compile)
  OLMo-core, 1B model, H100, bf16: ~55,000

--dry-run swaps every shape for the tiny preset (T = 64; long-context rows 128 and 256), runs on the
CPU in fp32 for a few steps and prints the same table; an FP8 row shows the one-line refusal there.
Its figures are not measurements.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import SPECIAL, CountingLoader, make_shards  # noqa: E402

from pretrain.config import resolve  # noqa: E402
from pretrain.configlib import ConfigError  # noqa: E402
from pretrain.data.loader import PackedLoader  # noqa: E402
from pretrain.data.loader_config import LoaderConfig, MixtureConfig  # noqa: E402
from pretrain.data.mixture import Mixture  # noqa: E402
from pretrain.model import Transformer  # noqa: E402
from pretrain.train.api import build_trainer  # noqa: E402
from pretrain.train.hardware import peak_flops  # noqa: E402
from pretrain.train.trainer import Trainer  # noqa: E402

REFERENCES = {
    "torchtitan Llama-3.1-8B FSDP 8xH100 (eager)": 5762,
    "torchtitan Llama-3.1-8B FSDP 8xH100 (compile)": 6667,
    "OLMo-core 1B, H100 bf16": 55000,
}
LONG_CONTEXT = (8192, 32768)


@dataclass
class Case:
    label: str
    preset: str
    seq_len: int
    micro_batch: int
    fp8: bool = False
    compile_scope: str = ""
    """"" = eager, else train.compile_scope (model or blocks)."""
    doc_mask: bool = True
    activation_checkpointing: bool = False


def cases(args) -> list[Case]:
    """The rows to measure; under --dry-run the same rows with tiny shapes."""
    out: list[Case] = []
    models = ["gpt2-124m"] if args.quick else args.models.split(",")
    compiles = [""] + (["blocks"] if args.compile else [])
    for m in models:
        seq = resolve(m).train.seq_len
        mb = args.micro_batch if m != "llama-1b" else max(1, args.micro_batch // 2)
        for c in compiles:
            out.append(Case(m, m, seq, mb, compile_scope=c, activation_checkpointing=args.activation_checkpointing))
        if not args.no_fp8:  # float8 is meant to run compiled (eager float8 casts are separate kernels)
            out.append(Case(m, m, seq, mb, fp8=True, compile_scope="blocks",
                            activation_checkpointing=args.activation_checkpointing))
    if not args.quick and not args.no_long_context:
        for T in LONG_CONTEXT:  # the same tokens per micro-batch as the 124M row, in fewer, longer rows
            mb = max(1, args.micro_batch * 1024 // T)
            out.append(Case(f"124M T={T}", "gpt2-124m", T, mb, activation_checkpointing=True))
    if args.dry_run:
        for c in out:
            c.preset = "tiny"
            c.seq_len = 64 if c.seq_len <= 2048 else 64 * (2 if c.seq_len <= 8192 else 4)
            c.micro_batch = 2
    return out


def overrides(case: Case, dry_run: bool) -> list[str]:
    flag = lambda v: str(bool(v)).lower()  # noqa: E731
    over = ["train.grad_accum=1", 'train.spike.policy="off"', "train.log_interval=1000000",
            f"train.micro_batch={case.micro_batch}", f"train.seq_len={case.seq_len}",
            f"model.max_seq_len={case.seq_len}", f"train.fp8={flag(case.fp8)}",
            f"train.compile={flag(case.compile_scope)}", f'train.compile_scope="{case.compile_scope or "model"}"',
            f"train.activation_checkpointing={flag(case.activation_checkpointing)}"]
    if dry_run:
        over += ['train.precision="fp32"', 'train.device="cpu"', "train.peak_flops=1e11"]
    else:
        over += ['train.precision="bf16"', 'train.device="cuda"']
    if not case.doc_mask:
        over.append('train.stages=[{name = "bulk", doc_mask = false}]')
    return over


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux: the process's peak RSS


def one_step(trainer: Trainer, stage) -> None:
    """One optimizer step through the trainer's own step code (what `pretrain train` runs per step)."""
    trainer.train_step(stage)
    trainer.step += 1


def measure(case: Case, steps: int, warmup: int, dry_run: bool, tmp: Path) -> dict:
    cfg = resolve(case.preset, overrides(case, dry_run))
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    T, mb = case.seq_len, case.micro_batch
    shards = make_shards(tmp / f"tok_{case.preset}_{T}", cfg.model.vocab_size, T, (steps + warmup + 2) * mb * T * 2)
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    holder = {}

    def make_loader(stage):
        inner = PackedLoader(shards, stage.seq_len, stage.micro_batch,
                             Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()}),
                             LoaderConfig(pack=True, doc_mask=stage.cfg.doc_mask), special=SPECIAL)
        holder["loader"] = CountingLoader(inner)
        return holder["loader"]

    run = tmp / f"run_{len(list(tmp.iterdir()))}"
    tr = build_trainer(cfg, run, model, make_loader, progress=False, fresh=True)
    if tr.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(tr.device)
    tr.begin()  # fresh start, as fit() does before its first step
    stage = tr.plan.stage_at(0)
    t0 = time.perf_counter()
    one_step(tr, stage)  # includes compilation when compiled
    synchronize(tr.device)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        one_step(tr, stage)
    synchronize(tr.device)
    holder["loader"].positions = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step(tr, stage)
    synchronize(tr.device)
    dt = time.perf_counter() - t0
    tr.log.close()
    tps = holder["loader"].positions / dt
    peak, source = peak_flops(tr.device, not dry_run, cfg.train.peak_flops)
    return {**asdict(case), "params": model.num_params(), "tokens_per_s": tps,
            "mfu": tps * model.flops_per_token(T) / peak, "first_step_s": first, "peak": peak,
            "peak_source": source, "mem_gb": peak_memory_gb(tr.device), "step_s": dt / steps}


def describe(case: Case, dry_run: bool = False) -> str:
    prec = "fp8" if case.fp8 else "fp32" if dry_run else "bf16"
    comp = f"compile={case.compile_scope}" if case.compile_scope else "eager"
    return f"{case.label:14s} T={case.seq_len:<6d} mb={case.micro_batch:<3d} {prec:5s} {comp:15s}"


def print_row(r: dict, dry_run: bool) -> None:
    case = Case(**{k: r[k] for k in Case.__dataclass_fields__})
    print(f"{describe(case, dry_run):56s} {r['params'] / 1e6:7.1f}M {r['tokens_per_s']:10,.0f} {r['mfu']:6.1%} "
          f"{r['mem_gb']:7.2f} {r['first_step_s']:10.1f}", flush=True)


GOAL_MFU = 0.45


def goal_line(rows: list[dict], dry_run: bool) -> str:
    """Issue 15's goal, read off the rows: the best bf16 MFU of the 1B model at its own context."""
    one_b = [r for r in rows if r["label"] == "llama-1b" and not r["fp8"]]
    if dry_run:
        return "goal (1B bf16 MFU >= 45%): not judged on a dry run"
    if not one_b:
        return "goal (1B bf16 MFU >= 45%): no 1B bf16 row was measured"
    best = max(one_b, key=lambda r: r["mfu"])
    verdict = "met" if best["mfu"] >= GOAL_MFU else "not met"
    return (f"goal (1B bf16 MFU >= 45%): {verdict}, best {best['mfu']:.1%} "
            f"({best['compile_scope'] or 'eager'}, {best['tokens_per_s']:,.0f} tok/s)")


def run_case(case: Case, steps: int, warmup: int, args, tmp: Path) -> tuple[dict | None, str | None]:
    """(row, None) or (None, note): a row that fails is a note, so the rows measured before it survive
    (a device lease is short: one bad kernel must not cost the whole table)."""
    try:
        return measure(case, steps, warmup, args.dry_run, tmp), None
    except ConfigError as exc:  # e.g. train.fp8 on a GPU without FP8: the trainer's one-line refusal
        return None, f"{describe(case, args.dry_run)} refused: {exc}"
    except torch.cuda.OutOfMemoryError:
        return None, (f"{describe(case, args.dry_run)} out of memory (try a smaller --micro-batch or "
                      "--activation-checkpointing)")
    except Exception as exc:  # noqa: BLE001 - reported with its traceback, then the next row runs
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return None, f"{describe(case, args.dry_run)} failed: {type(exc).__name__}: {first}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="gpt2-124m only, few steps, no long-context rows")
    ap.add_argument("--models", default="gpt2-124m,llama-1b", help="comma-separated presets, measured in this order")
    ap.add_argument("--micro-batch", type=int, default=16, help="sequences per micro-batch (halved for llama-1b)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile per block")
    ap.add_argument("--no-fp8", action="store_true", help="skip the FP8 rows")
    ap.add_argument("--no-long-context", action="store_true", help="skip the T = 8192 / 32768 rows")
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="start no row after this many seconds (0: no limit); the rows not run are listed")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU, a few steps (CI)")
    ap.add_argument("--json", type=Path, help="also write the rows here (rewritten after every row)")
    args = ap.parse_args(argv)
    if args.time_limit < 0 or args.steps < 1 or args.warmup < 1:
        ap.error("--time-limit must be >= 0, --steps and --warmup >= 1")
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_train.py needs a CUDA GPU (--dry-run runs the same code on the CPU with tiny shapes)",
              file=sys.stderr)
        return 2
    if args.dry_run:
        steps, warmup = 2, 1
        print(f"dry run on the CPU, torch {torch.__version__}: tiny shapes; the figures are not measurements")
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        steps, warmup = (8, 3) if args.quick else (args.steps, args.warmup)
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    rows, notes = [], []
    started = time.perf_counter()
    print(f"{'row':56s} {'params':>8s} {'tok/s':>10s} {'MFU':>6s} {'mem GB':>7s} {'1st step s':>10s}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases(args):
            if args.time_limit and time.perf_counter() - started > args.time_limit:
                row, note = None, f"{describe(case, args.dry_run)} not run: --time-limit {args.time_limit:g} s reached"
            else:
                row, note = run_case(case, steps, warmup, args, Path(tmp))
            if row is not None:
                rows.append(row)
                print_row(row, args.dry_run)
            else:
                notes.append(note)
            gc.collect()  # a failed row's trainer is garbage now: give its memory back before the next
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if args.json:
                args.json.write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    if rows:
        print(f"peak: {rows[0]['peak'] / 1e12:.1f} TFLOP/s ({rows[0]['peak_source']})")
        print(goal_line(rows, args.dry_run))
    for n in notes:
        print(n)
    print("\nreference points (tokens/s per GPU):")
    for k, v in REFERENCES.items():
        print(f"  {k:48s} {v:>8,d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
