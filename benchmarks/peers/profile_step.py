"""Where a training step spends its time: pretrain's speedrun step and nanochat's, under torch.profiler.

    python benchmarks/peers/profile_step.py --nanochat /work/nanochat \
        --nanochat-python /work/nanochat-venv/bin/python [--skip 40 --steps 30] [--nanochat-args "..."]

Each side trains in its own process, through its own unmodified training script (pretrain:
benchmarks/cpu_speedrun.py; nanochat: scripts.base_train with the recipe of nanochat_speedrun.py), run
under this file as a wrapper. The wrapper counts optimizer steps with torch's global optimizer hook
(``register_optimizer_step_post_hook``), so neither loop is edited: after ``--skip`` steps (compilation and
warm-up done) it profiles the next ``--steps`` steps, then writes a summary and ends the process.

The summary splits the profiled wall time by the top-level profiler events (those with no parent on the
CPU): the compiled forward graph, the autograd backward, each optimizer's step, and the rest by name; what
no event covers is Python between kernels (the loop, data, logging, callbacks). Both sides are printed side
by side with the step time and tokens per second over the profiled steps.

The nanochat side needs the data and tokenizer that nanochat_speedrun.py / nanochat_sweep.py prepared
(``--nanochat-base``, default the sweep's work directory).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]


def categorise(name: str) -> str:
    """A readable bucket for a top-level profiler event."""
    low = name.lower()
    if "optimizer.step" in low or "optimizer.zero_grad" in low:
        return name.replace("Optimizer.", "optimizer ").split("#")[-1] if "#" in name else name
    if "backward" in low or low.startswith("autograd::engine"):
        return "backward (autograd)"
    if "compiled" in low or "torch-compiled region" in low or "call compiledfxgraph" in low:
        return "forward (compiled graph)"
    if low.startswith("aten::") or low.startswith("c10d::") or low.startswith("gloo:"):
        return "eager aten ops (outside graphs)"
    return name[:60]


def wrap(args) -> None:
    """Run a training script in this process; profile steps skip+1 .. skip+steps; write the summary."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    state = {"count": 0, "first_type": None, "prof": None, "t0": 0.0}
    out = Path(args.summary)

    def finish() -> None:
        prof, wall = state["prof"], time.perf_counter() - state["t0"]
        prof.stop()
        buckets: dict[str, float] = {}
        for ev in prof.events():
            if ev.cpu_parent is None and ev.device_type == torch.autograd.DeviceType.CPU:
                key = categorise(ev.name)
                buckets[key] = buckets.get(key, 0.0) + ev.cpu_time_total / 1e6  # us -> s
        covered = sum(buckets.values())
        top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
        summary = {"label": args.label, "steps": args.steps, "wall_s": round(wall, 4),
                   "ms_per_step": round(1000 * wall / args.steps, 2),
                   "tokens_per_step": args.tokens_per_step,
                   "tokens_per_s": round(args.tokens_per_step * args.steps / wall, 1) if args.tokens_per_step else None,
                   "ms_per_step_by_part": {k: round(1000 * v / args.steps, 2)
                                           for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])},
                   "ms_per_step_uncovered": round(1000 * (wall - covered) / args.steps, 2),
                   "top_self_cpu_ops_ms_per_step": {e.key[:70]: round(e.self_cpu_time_total / 1000 / args.steps, 2)
                                                   for e in top},
                   "threads": torch.get_num_threads()}
        out.write_text(json.dumps(summary, indent=2))
        sys.stdout.flush()
        os._exit(0)  # the profile is taken: end the run here, whatever the script would do next

    def hook(opt, _args, _kwargs) -> None:
        # A composite optimizer (pretrain's Muon + AdamW) steps several torch optimizers per training
        # step: count the first type seen only.
        if state["first_type"] is None:
            state["first_type"] = type(opt)
        if type(opt) is not state["first_type"]:
            return
        state["count"] += 1
        if state["count"] == args.skip:
            state["prof"] = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            state["prof"].start()
            state["t0"] = time.perf_counter()
        elif state["count"] == args.skip + args.steps and state["prof"] is not None:
            finish()

    register_optimizer_step_post_hook(hook)
    sys.argv = [args.target, *args.rest]
    if args.module:  # as `python -m` does: the working directory is where the module is found
        sys.path.insert(0, os.getcwd())
        runpy.run_module(args.target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, str(Path(args.target).resolve().parent))
        runpy.run_path(args.target, run_name="__main__")
    raise SystemExit(f"{args.target} ended after {state['count']} steps, before step {args.skip + args.steps}")


def run_side(python: str, target: list[str], rest: list[str], summary: Path, label: str, skip: int, steps: int,
             tokens_per_step: int, cwd: Path, env: dict, log: Path) -> dict:
    cmd = [python, str(HERE), "--wrap", "--summary", str(summary), "--label", label, "--skip", str(skip),
           "--steps", str(steps), "--tokens-per-step", str(tokens_per_step), *target, "--", *rest]
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc or not summary.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"{label}: profiling failed (exit {rc}, log {log}): {' | '.join(tail)}")
    return json.loads(summary.read_text())


def compare(args) -> None:
    sys.path.insert(0, str(HERE.parent))
    import nanochat_speedrun as peer  # the sibling script: its recipe, checkout check and environment

    out = (args.out or ROOT / "runs" / "peers-profile").resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = (args.nanochat_base or ROOT / "runs" / "peers-nanochat-sweep-4m" / "nanochat-base").resolve()
    if not (base / "base_data_climbmix").is_dir():
        raise SystemExit(f"--nanochat-base {base}: no prepared data; run nanochat_sweep.py or nanochat_speedrun.py first")
    peer.check_checkout(args.nanochat)
    peer.resolve_dtype(args)
    peer.apply_patch(args.nanochat)
    nano_flags = [*peer.NANOCHAT_RECIPE, *shlex.split(args.nanochat_args)]
    nano_tokens = int([f for f in nano_flags if f.startswith("--total-batch-size=")][-1].split("=")[1])
    sys.path.insert(0, str(ROOT / "src"))
    from pretrain.config import resolve
    from pretrain.train.schedule import tokens_per_step

    our_tokens = tokens_per_step(resolve("quickstart", list(args.overrides)).train)
    results = []
    ours_env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    ours = lambda: run_side(sys.executable, [str(ROOT / "benchmarks" / "cpu_speedrun.py")],  # noqa: E731
                            ["--minutes", "10", "--out", str(out / "pretrain-run"), *args.overrides],
                            out / "pretrain.json", "pretrain", args.skip, args.steps, our_tokens, ROOT, ours_env,
                            out / "pretrain.log")
    theirs = lambda: run_side(str(args.nanochat_python), ["--module", "scripts.base_train"],  # noqa: E731
                              ["--device-type=cpu", "--run=dummy", "--time-budget=600", "--model-tag=profile",
                               "--eval-every=-1", "--core-metric-every=-1", "--sample-every=-1", *nano_flags],
                              out / "nanochat.json", "nanochat", args.skip, args.steps, nano_tokens, args.nanochat,
                              peer.nanochat_env(base, args.nanochat_dtype), out / "nanochat.log")
    order = [ours, theirs] if not args.nanochat_first else [theirs, ours]
    for side in order:
        load = round(os.getloadavg()[0], 2)
        rec = side()
        rec["load_average_at_start"] = load
        print(json.dumps(rec), flush=True)
        results.append(rec)
    by = {r["label"]: r for r in results}
    parts = sorted({k for r in results for k in r["ms_per_step_by_part"]},
                   key=lambda k: -max(r["ms_per_step_by_part"].get(k, 0) for r in results))
    print(f"\n| ms per step ({args.steps} steps after {args.skip}) | pretrain | nanochat |")
    print("|---|---|---|")
    for k in [*parts, "uncovered (Python between ops)", "whole step"]:
        def val(r, k=k):
            if k == "whole step":
                return r["ms_per_step"]
            if k.startswith("uncovered"):
                return r["ms_per_step_uncovered"]
            return r["ms_per_step_by_part"].get(k, 0.0)
        print(f"| {k} | {val(by['pretrain']):.2f} | {val(by['nanochat']):.2f} |")
    ratio = by["pretrain"]["tokens_per_s"] / by["nanochat"]["tokens_per_s"]
    print(json.dumps({"pretrain_tokens_per_s": by["pretrain"]["tokens_per_s"],
                      "nanochat_tokens_per_s": by["nanochat"]["tokens_per_s"], "ratio": round(ratio, 3)}))


def peer_dtype_flag(ap: argparse.ArgumentParser) -> None:
    sys.path.insert(0, str(HERE.parent))
    import nanochat_speedrun as peer

    peer.add_dtype_flag(ap)


def main(argv: list[str]) -> None:
    if "--wrap" in argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--wrap", action="store_true")
        ap.add_argument("--summary", required=True)
        ap.add_argument("--label", required=True)
        ap.add_argument("--skip", type=int, required=True)
        ap.add_argument("--steps", type=int, required=True)
        ap.add_argument("--tokens-per-step", type=int, default=0)
        ap.add_argument("--module", action="store_true")
        ap.add_argument("target")
        split = argv.index("--")
        args = ap.parse_args(argv[:split])
        args.rest = argv[split + 1:]
        wrap(args)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanochat", type=Path, required=True, help="nanochat checkout at 92d63d4")
    ap.add_argument("--nanochat-python", type=Path, required=True, help="Python of nanochat's virtual env")
    ap.add_argument("--nanochat-base", type=Path, default=None, help="NANOCHAT_BASE_DIR with data and tokenizer")
    ap.add_argument("--nanochat-args", default="", help="extra scripts.base_train flags (e.g. a sweep's best)")
    ap.add_argument("--skip", type=int, default=40, help="steps before the profile (compilation, warm-up)")
    ap.add_argument("--steps", type=int, default=30, help="steps profiled")
    peer_dtype_flag(ap)
    ap.add_argument("--nanochat-first", action="store_true", help="run nanochat's side first")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default runs/peers-profile)")
    ap.add_argument("overrides", nargs="*", help="pretrain config overrides (as for cpu_speedrun.py)")
    args = ap.parse_args(argv)
    if args.skip < 1 or args.steps < 1:
        ap.error("--skip and --steps must be >= 1")
    compare(args)


if __name__ == "__main__":
    main(sys.argv[1:])
