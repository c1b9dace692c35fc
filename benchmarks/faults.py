"""Fault injection, measured: a 2-rank gloo job under torchrun with seeded faults every F seconds.

    python benchmarks/faults.py --minutes 3 --every 60 --seed 0
    python benchmarks/faults.py --minutes 2 --every 30 --kinds kill,hang --checkpoint-interval 50

Faults, drawn in turn from a seeded shuffle of ``--kinds``:
  kill  SIGKILL to one rank, chosen at random (a lost machine): torchrun restarts the group
  term  SIGTERM to the whole job (torchrun forwards it: a preemption), then the same command again
  hang  a rank, chosen at random, stops at its next step (InjectFault's trigger file); the watchdog
        (``--watchdog`` seconds: train.watchdog_timeout, which times ordinary steps; checkpoints and a
        launch's first step get train.watchdog_slow_timeout, ``--watchdog-slow``) ends it and torchrun
        restarts the group

``--checkpoint-interval auto`` uses Young's interval (pretrain.train.cadence): sqrt(2 x a save's
seconds x ``--every``), in steps of the calibration run's step time, both measured by the calibration.

The job is the tiny preset's model on a synthetic corpus (its own tokenizer and shards, made once in
``--work``). First an uninterrupted run of the same steps (the reference: its wall time sets how many
steps fill ``--minutes``), then the faulted run. Printed: faults, restarts, steps lost per fault (from
the ``restart`` events), goodput and its parts (the ``goodput`` event: every launch of the run), and
whether the final weights equal the reference's bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

FAULT = "pretrain.train.callbacks.faults:InjectFault"
WORDS = ("the model data token train loss layer attention value memory sequence batch learning rate weight "
         "gradient step corpus document domain mixture schedule shard index context window").split()


def make_data(work: Path) -> tuple[Path, Path]:
    """A synthetic two-domain corpus, its tokenizer (512 tokens) and shards; reused when present."""
    tokens, tok = work / "tokens", work / "tokenizer" / "tokenizer.json"
    if tok.is_file() and (tokens / "train").is_dir():
        return tokens, tok
    from pretrain.data.record import Document, write_jsonl
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer

    rng = random.Random(0)
    docs = []
    for i in range(400):
        prose = " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
                         for _ in range(rng.randint(2, 8)))
        docs.append(Document(prose, source=f"prose:{i}", domain="prose"))
        code = "\n".join(f"def f_{j}(x):\n    return x * {j} + {rng.randint(0, 99)}\n" for j in range(rng.randint(1, 6)))
        docs.append(Document(code, source=f"code:{i}", domain="code"))
    write_jsonl(work / "docs.jsonl", docs)
    t = train_tokenizer(docs, TokenizerConfig(vocab_size=512, sample_bytes_per_domain=200_000), work / "tokenizer")
    tokenize_corpus(work / "docs.jsonl", t, tokens, val_fraction=0.1, workers=1)
    return tokens, tok


def command(args, tokens: Path, tok: Path, run: Path, steps: int, trigger: Path | None) -> list[str]:
    over = [f'data.tokens="{tokens}"', f'tokenizer.path="{tok}"', f"train.max_steps={steps}",
            f"train.checkpoint_interval={args.checkpoint_interval}", "train.log_interval=10", "eval.interval=0",
            f"train.watchdog_timeout={args.watchdog}", f"train.watchdog_slow_timeout={args.watchdog_slow}",
            "train.keep_last=2"]
    if trigger is not None:
        over += [f'train.callbacks=["{FAULT}"]',
                 f'train.callback_args={{"{FAULT}" = {{kind = "hang", trigger = "{trigger}"}}}}']
    # --monitor-interval: how often the agent looks at its ranks (0.1 s is torch 2.13's default; older
    # releases waited longer, and a restart waits for it).
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "--max-restarts", "1000", "--monitor-interval", "0.1", "-m", "pretrain.train", "tiny", *over, *args.overrides,
            "--run-dir", str(run), "--no-progress"]


def workers(agent: int) -> list[int]:
    """PIDs of the agent's child processes (the ranks), in start order."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == agent:
            out.append(int(stat.parent.name))
    return sorted(out)


def launch(cmd: list[str], log) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def faulted_run(args, cmd: list[str], run: Path, trigger: Path, log) -> list[tuple[float, str]]:
    """Run the job to its end, injecting a fault every ``args.every`` seconds; returns (time, fault)."""
    rng = random.Random(args.seed)
    kinds = args.kinds.split(",")
    order: list[str] = []
    done: list[tuple[float, str]] = []
    t0 = time.time()
    job = launch(cmd, log)
    next_at = t0 + args.every
    while True:
        rc = job.poll()
        if rc is not None:
            if rc == 0:
                return done
            raise SystemExit(f"error: the job failed (exit {rc}); see {log.name}")
        if time.time() >= next_at and (run / "checkpoints").is_dir():
            if not order:
                order = rng.sample(kinds, len(kinds))
            kind = order.pop()
            ranks = workers(job.pid)
            if kind == "kill" and ranks:
                os.kill(rng.choice(ranks), signal.SIGKILL)
            elif kind == "term":
                job.send_signal(signal.SIGTERM)
                job.wait(timeout=300)
                job = launch(cmd, log)  # the scheduler's requeue: the same command again
            elif kind == "hang":
                Path(f"{trigger}.rank{rng.randrange(2)}").touch()
            done.append((time.time() - t0, kind))
            print(f"  {time.time() - t0:6.1f}s  {kind}", flush=True)
            next_at = time.time() + args.every
        time.sleep(0.2)


def same_weights(a: Path, b: Path) -> bool:
    import torch

    from pretrain.model.io import read_weights

    x, y = read_weights(a / "model.safetensors"), read_weights(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def events(run: Path, name: str) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == name]


def signal_latency(args, tokens: Path, tok: Path, preset: str, ranks: int) -> dict:
    """Seconds from SIGTERM (to ``pretrain train``, or to torchrun for 2 ranks) to the process's exit,
    signalled once the run has logged a few steps; and the checkpoint's part of it (the event's figure)."""
    run = args.work / f"latency-{preset}-{ranks}"
    shutil.rmtree(run, ignore_errors=True)
    over = [f'data.tokens="{tokens}"', f'tokenizer.path="{tok}"', "model.vocab_size=0", "train.max_steps=100000",
            "train.log_interval=1", "eval.interval=0", "train.compile=false", *args.overrides]
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] \
        if ranks > 1 else [sys.executable]
    job = subprocess.Popen([*head, "-m", "pretrain.train", preset, *over, "--run-dir", str(run), "--no-progress"],
                           env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    while job.poll() is None and sum(1 for x in (metrics.read_text().splitlines() if metrics.exists() else [])
                                     if '"type": "train"' in x) < 3:
        time.sleep(0.05)
    t = time.time()
    job.send_signal(signal.SIGTERM)
    rc = job.wait(timeout=600)
    exit_s = time.time() - t
    (ev,) = events(run, "preempted")
    saved = float(ev["detail"].split("checkpoint written ")[1].split("s after")[0])
    return {"preset": preset, "ranks": ranks, "exit_status": rc, "signal_to_exit_s": round(exit_s, 2),
            "signal_to_checkpoint_s": saved, "step": ev["stop_step"]}


def calibrate(args, tokens: Path, tok: Path, log) -> tuple[int, float, float]:
    """Steps that fill ``--minutes`` of the uninterrupted job, from a 200-step run's productive time (a save
    every 100 steps); also that run's seconds per step and per checkpoint save."""
    from pretrain.train.cadence import checkpoint_interval_steps

    calib = args.work / "calibrate"
    shutil.rmtree(calib, ignore_errors=True)
    interval, args.checkpoint_interval = args.checkpoint_interval, "100"
    subprocess.run(command(args, tokens, tok, calib, 200, None), env=dict(os.environ, OMP_NUM_THREADS="1"),
                   stdout=log, stderr=subprocess.STDOUT, check=True)
    args.checkpoint_interval = interval
    good = events(calib, "goodput")[-1]
    per_step, per_save = good["productive_s"] / 200, good["checkpoint_save_s"] / max(1, good["saves"])
    steps = max(200, int(args.minutes * 60 / per_step))
    print(f"calibration: {per_step * 1000:.1f} ms/step -> {steps} steps; {per_save * 1000:.0f} ms a save "
          f"({good['saves']} saves); Young's interval for a fault every {args.every:g}s: "
          f"{checkpoint_interval_steps(per_save, args.every, per_step)} steps", flush=True)
    return steps, per_step, per_save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="length of the uninterrupted run")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between faults")
    ap.add_argument("--kinds", default="kill,term,hang")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-interval", default="100", help="steps, or auto: Young's interval for a fault "
                    "every --every seconds, from the calibration's save cost and step time")
    ap.add_argument("--watchdog", type=float, default=5.0, help="train.watchdog_timeout of the job (ordinary steps)")
    ap.add_argument("--watchdog-slow", type=float, default=-1.0, help="train.watchdog_slow_timeout of the job "
                    "(checkpoints, a launch's first step; -1 = auto)")
    ap.add_argument("--work", type=Path, default=Path("runs/faults-bench"))
    ap.add_argument("--steps", type=int, default=0, help="skip the calibration; an existing reference run of "
                    "this many steps in --work is reused")
    ap.add_argument("--signal-latency", default="", help="instead: time SIGTERM -> exit for these presets "
                    "(e.g. tiny,quickstart), in one process and in 2 torchrun ranks")
    ap.add_argument("overrides", nargs="*", help="config overrides for both runs")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tokens, tok = make_data(args.work)
    if args.signal_latency:
        print(f"load at start: {os.getloadavg()}", flush=True)
        for preset in args.signal_latency.split(","):
            for ranks in (1, 2):
                print(json.dumps(signal_latency(args, tokens, tok, preset, ranks)), flush=True)
        return
    log = open(args.work / "jobs.log", "w")  # noqa: SIM115 - every launch appends to it
    print(f"load at start: {os.getloadavg()}", flush=True)

    if args.checkpoint_interval != "auto" and not args.checkpoint_interval.isdigit():
        raise SystemExit(f"error: --checkpoint-interval must be a number of steps or auto "
                         f"(got {args.checkpoint_interval!r})")
    if args.steps and args.checkpoint_interval != "auto":
        steps = args.steps
    else:
        from pretrain.train.cadence import checkpoint_interval_steps

        steps, per_step, per_save = calibrate(args, tokens, tok, log)
        steps = args.steps or steps
        if args.checkpoint_interval == "auto":
            args.checkpoint_interval = str(checkpoint_interval_steps(per_save, args.every, per_step))
    print(f"checkpoint interval: {args.checkpoint_interval} steps; watchdog: {args.watchdog:g}s for steps, "
          f"{args.watchdog_slow:g}s for slow phases (-1 = auto)", flush=True)
    ref = args.work / f"reference-ci{args.checkpoint_interval}"
    final = ref / "checkpoints" / "final" / "meta.json"
    if not (final.is_file() and json.loads(final.read_text())["step"] == steps):
        shutil.rmtree(ref, ignore_errors=True)
        subprocess.run(command(args, tokens, tok, ref, steps, None), env=dict(os.environ, OMP_NUM_THREADS="1"),
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    ref_good = events(ref, "goodput")[-1]
    print(f"reference: {ref_good['wall_s']:.0f}s, goodput {ref_good['goodput']:.1%}", flush=True)

    run = args.work / "faulted"
    shutil.rmtree(run, ignore_errors=True)
    trigger = args.work / "hang-trigger"
    for stale in args.work.glob("hang-trigger.rank*"):  # a hang asked for after an earlier run had ended
        stale.unlink()
    t = time.time()
    faults = faulted_run(args, command(args, tokens, tok, run, steps, trigger), run, trigger, log)
    wall = time.time() - t
    good = events(run, "goodput")[-1]
    restarts = events(run, "restart")
    lost = [r["steps_lost"] for r in restarts]
    exact = same_weights(ref / "checkpoints" / "final", run / "checkpoints" / "final")
    kinds = {k: sum(1 for _, f in faults if f == k) for k in args.kinds.split(",")}
    print(f"\nfaulted run: {wall:.0f}s, {len(faults)} faults {kinds}, {len(restarts)} restarts, "
          f"{len(events(run, 'hang'))} hang events, {len(events(run, 'preempted'))} preemptions")
    print(f"steps lost per restart: {lost} (checkpoint interval {args.checkpoint_interval}); seconds from the "
          f"last record to the next launch: {[r['lost_s'] for r in restarts]}")
    print(f"goodput {good['goodput']:.1%} over {good['launches']} launches; parts (s): "
          + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in good.items() if k.endswith("_s") and k != "wall_s"))
    print(f"per launch: start-up {good['startup_s'] / good['launches']:.2f}s; per checkpoint "
          f"{good['checkpoint_save_s'] / max(1, good['saves']) * 1000:.0f} ms ({good['saves']} saves; reference: "
          f"start-up {ref_good['startup_s']:.2f}s, {ref_good['checkpoint_save_s'] / max(1, ref_good['saves']) * 1000:.0f}"
          f" ms, {ref_good['saves']} saves)")
    print(f"Young's interval at the faulted run's own save cost, step time and failure rate (the goodput "
          f"event): {good.get('young_interval_steps', 0)} steps")
    print(f"final weights equal the uninterrupted run's: {exact}")
    print(f"load at end: {os.getloadavg()}")
    print(json.dumps({"steps": steps, "faults": faults, "steps_lost": lost, "goodput": good, "bit_exact": exact,
                      "reference_goodput": ref_good["goodput"], "wall_s": wall}))


if __name__ == "__main__":
    main()
