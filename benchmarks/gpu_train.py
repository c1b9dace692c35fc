"""GPU training throughput and MFU (bf16 autocast, fp32 master weights) for ~124M and ~1B models on one GPU.

    python benchmarks/gpu_train.py --quick             # 124M only, a few steps
    python benchmarks/gpu_train.py --compile           # 124M and 1B, eager and torch.compile
    python benchmarks/gpu_train.py --models llama-1b --micro-batch 8 --activation-checkpointing

Goal: MFU >= 40% in bf16. Published reference points for similar setups (tokens/s per GPU):
  torchtitan, Llama-3.1-8B, FSDP on 8x H100: 5,762 (eager), 6,667 (torch.compile)
  OLMo-core, 1B model, H100, bf16: ~55,000
The table printed at the end converts our tokens/s to the same unit (per GPU) and states the peak used
(datasheet dense bf16 of the detected GPU, pretrain.train.hardware.GPU_PEAKS).

Data: synthetic token shards (log-normal document lengths) packed by the real loader, so the numbers
include loading, packing, the document mask and the trainer's bookkeeping.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import SPECIAL, CountingLoader, make_shards  # noqa: E402

from pretrain.config import resolve  # noqa: E402
from pretrain.data.loader import PackedLoader  # noqa: E402
from pretrain.data.loader_config import LoaderConfig, MixtureConfig  # noqa: E402
from pretrain.data.mixture import Mixture  # noqa: E402
from pretrain.model import Transformer  # noqa: E402
from pretrain.train.hardware import peak_flops  # noqa: E402
from pretrain.train.trainer import Trainer  # noqa: E402

REFERENCES = {
    "torchtitan Llama-3.1-8B FSDP 8xH100 (eager)": 5762,
    "torchtitan Llama-3.1-8B FSDP 8xH100 (compile)": 6667,
    "OLMo-core 1B, H100 bf16": 55000,
}


def measure(preset: str, micro_batch: int, steps: int, warmup: int, compile_: bool, act_ckpt: bool,
            doc_mask: bool, tmp: Path) -> dict:
    over = ["train.grad_accum=1", 'train.spike.policy="off"', "train.log_interval=1000000",
            f"train.micro_batch={micro_batch}", f"train.compile={str(compile_).lower()}",
            f"train.activation_checkpointing={str(act_ckpt).lower()}", 'train.precision="bf16"',
            'train.device="cuda"']
    if not doc_mask:
        over.append('train.stages=[{name = "bulk", doc_mask = false}]')
    cfg = resolve(preset, over)
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    T = cfg.train.seq_len
    shards = make_shards(tmp / f"tok_{preset}", cfg.model.vocab_size, T, (steps + warmup + 2) * micro_batch * T * 2)
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    holder = {}

    def make_loader(stage):
        inner = PackedLoader(shards, stage.seq_len, stage.micro_batch,
                             Mixture(MixtureConfig(), {d: s.num_tokens for d, s in shards.items()}),
                             LoaderConfig(pack=True, doc_mask=stage.cfg.doc_mask), special=SPECIAL)
        holder["l"] = CountingLoader(inner)
        return holder["l"]

    tr = Trainer(cfg, tmp / f"run_{preset}_{compile_}", model, make_loader, progress=False, fresh=True)
    tr.begin()
    stage = tr.plan.stage_at(0)
    t0 = time.perf_counter()
    tr.train_step(stage)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        tr.train_step(stage)
    torch.cuda.synchronize()
    holder["l"].positions = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.train_step(stage)
        tr.step += 1
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tr.log.close()
    tps = holder["l"].positions / dt
    peak, source = peak_flops(tr.device, True)
    fpt = model.flops_per_token(T)
    return {"preset": preset, "params": model.num_params(), "tokens_per_s": tps, "mfu": tps * fpt / peak,
            "first_step_s": first, "peak": peak, "peak_source": source,
            "mem_gb": torch.cuda.max_memory_allocated() / 2**30, "compile": compile_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="gpt2-124m only, few steps")
    ap.add_argument("--models", default="gpt2-124m,llama-1b", help="comma-separated presets")
    ap.add_argument("--micro-batch", type=int, default=16, help="sequences per micro-batch")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile")
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--no-doc-mask", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_train.py needs a CUDA GPU (see train_throughput.py for CPU)")
    torch.backends.cuda.matmul.allow_tf32 = True
    models = ["gpt2-124m"] if args.quick else args.models.split(",")
    steps, warmup = (8, 3) if args.quick else (args.steps, args.warmup)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            mb = args.micro_batch if m != "llama-1b" else max(1, args.micro_batch // 2)
            for c in ([False, True] if args.compile else [False]):
                try:
                    r = measure(m, mb, steps, warmup, c, args.activation_checkpointing, not args.no_doc_mask, Path(tmp))
                except torch.cuda.OutOfMemoryError:
                    print(f"{m} micro-batch {mb}: out of memory (try --micro-batch smaller or --activation-checkpointing)")
                    torch.cuda.empty_cache()
                    continue
                rows.append(r)
                torch.cuda.empty_cache()
    if not rows:
        return
    print(f"peak: {rows[0]['peak'] / 1e12:.0f} TFLOP/s ({rows[0]['peak_source']})")
    print(f"{'model':12s} {'params':>8s} {'compile':>8s} {'tok/s':>10s} {'MFU':>6s} {'mem GB':>7s} {'1st step s':>10s}")
    for r in rows:
        print(f"{r['preset']:12s} {r['params'] / 1e6:7.0f}M {str(r['compile']):>8s} {r['tokens_per_s']:10,.0f} "
              f"{r['mfu']:6.1%} {r['mem_gb']:7.1f} {r['first_step_s']:10.1f}")
    print("\nreference points (tokens/s per GPU):")
    for k, v in REFERENCES.items():
        print(f"  {k:48s} {v:>8,d}")


if __name__ == "__main__":
    main()
