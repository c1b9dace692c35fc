"""Lineage: how long ``trace step`` and ``trace doc`` take on a quickstart-size run, and how many bytes
of lineage a run stores per trained token.

    python benchmarks/lineage.py [--work /tmp/lineage-bench] [--steps 1500] [--json]

1. The quickstart's data, built once in --work by the stage APIs with the quickstart preset: built-in
   corpus -> curate -> tokenizer -> token shards.
2. A quickstart-length step log: the quickstart's loader (context 256, micro-batch 16, its mixture) is
   driven through --steps real optimizer steps of batches by the training callback's own writer lines
   (a loader segment, its start, the batch plan, a checkpoint position every 100 steps), as
   ``pretrain train quickstart`` writes them; the model is left out, since tracing reads only the log
   and the shards. --steps 1500 is about what the quickstart's 5-minute budget trains on 2 cores.
3. Timings (best of 3, in a fresh process state each): ``trace step`` of the first, middle and last
   step with origins (the curated record of each document is looked up), and ``trace doc`` of a
   document trained in the middle of the run (every step is recomputed to find its steps).
4. Bytes: the step log of this run per trained token, and a synthetic step log of a 1e9-token run at
   the same 4,096 tokens a step (244,140 steps, a checkpoint every 1,000), built in --work/synthetic
   and read back, both against the token shards' 2 bytes a token.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def build_data(work: Path) -> Path:
    """The quickstart's curated data, tokenizer and shards under ``work`` (reused when complete)."""
    from pretrain.config import resolve
    from pretrain.data.builtin import build_builtin_corpus
    from pretrain.data.curate import curate
    from pretrain.data.record import read_dir
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer import train_tokenizer

    cfg = resolve("quickstart", [])
    if (work / "tokens" / "manifest.json").is_file():
        return work
    vf = cfg.data.val_fraction
    build_builtin_corpus(work / "corpus", val_fraction=vf, domains=tuple(cfg.data.builtin_domains),
                         max_docs=cfg.data.builtin_max_docs)
    curate([str(work / "corpus")], work / "curated", cfg.data.curate, workers=2, progress=False)
    train_tokenizer(read_dir(work / "curated" / "data"), cfg.tokenizer, work / "tokenizer", val_fraction=vf,
                    inputs=[work / "curated" / "data"])
    tokenize_corpus(work / "curated" / "data", work / "tokenizer" / "tokenizer.json", work / "tokens", val_fraction=vf)
    return work


def write_log(work: Path, steps: int) -> Path:
    """A step log of ``steps`` quickstart steps, with the lines the training callback writes."""
    from pretrain.config import resolve
    from pretrain.lineage.replay import describe, position
    from pretrain.lineage.steplog import StepLogWriter
    from pretrain.rundir import RunDir
    from pretrain.tokenizer import load_tokenizer
    from pretrain.train.api import build_loader_factory
    from pretrain.train.stages import Plan

    cfg = resolve("quickstart", [f'data.tokens="{work / "tokens"}"', f"train.max_steps={steps}"])
    run = RunDir(work / "run")
    run.root.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(work / "tokenizer" / "tokenizer.json")
    stage = Plan(cfg.train).stage_at(0)
    loader = build_loader_factory(cfg, work / "tokens", tok)(stage)
    writer = StepLogWriter(run.root, fresh=True)
    segment = writer.segment(describe(loader))
    for step in range(1, steps + 1):
        loader.set_progress((step - 1) / steps)
        if step == 1:
            writer.write({"from": 1, "segment": segment, "start": position(loader)})
        loader.next_batch()
        if step == 1:
            writer.write({"plan": 1, "micro": 1, "world": 1, "total": steps})
        if step % 100 == 0 or step == steps:
            writer.write({"reached": step, "position": position(loader)})
    writer.close()
    return run.root


def best(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def synthetic_log(work: Path, tokens: float = 1e9, per_step: int = 4096, every: int = 1000) -> dict:
    """Build the step log of a 1e9-token run as the callback writes it (no line per step: the loader's
    segment, start and batch plan once, a position per checkpoint), read it back, and measure it."""
    from pretrain.lineage.steplog import log_path, read_log

    src = log_path(work / "run").read_text().splitlines()
    header, start, plan, reached = src[0], src[1], src[2], json.loads(src[3])
    steps = int(tokens // per_step)
    lines = [header, start, plan.replace(f'"total":{json.loads(plan)["total"]}', f'"total":{steps}')]
    lines += [json.dumps({"reached": s, "position": reached["position"]}, separators=(",", ":"))
              for s in [*range(every, steps + 1, every), steps]]
    path = log_path(work / "synthetic")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    log = read_log(work / "synthetic")
    read_s = time.perf_counter() - t0
    size = path.stat().st_size
    return {"tokens": tokens, "steps": log.last_step, "log_bytes": size, "read_s": round(read_s, 4),
            "bytes_per_token": size / tokens, "fraction_of_shards": size / (2 * tokens)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lineage-bench"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from pretrain.lineage.trace import trace_doc, trace_step

    t0 = time.perf_counter()
    work = build_data(args.work)
    data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = write_log(work, args.steps)
    log_s = time.perf_counter() - t0
    out: dict = {"steps": args.steps, "tokens_per_step": 4096, "data_s": round(data_s, 1), "log_s": round(log_s, 1)}
    for n in (1, args.steps // 2, args.steps):
        s, res = best(lambda n=n: trace_step(run, n))
        out[f"trace_step_{n}_s"] = round(s, 3)
        out[f"trace_step_{n}_documents"] = len(res["documents"])
    mid = trace_step(run, args.steps // 2, origins=False)["documents"][0]["id"]
    s, res = best(lambda: trace_doc(run, mid))
    out.update(trace_doc_s=round(s, 3), trace_doc_steps=[x["step"] for x in res["steps"]])
    log = run / "lineage" / "steps.jsonl"
    trained = args.steps * 4096
    out.update(log_bytes=log.stat().st_size, log_bytes_per_token=log.stat().st_size / trained,
               synthetic_1e9=synthetic_log(work))
    print(json.dumps(out, indent=1 if args.json else None))


if __name__ == "__main__":
    main()
