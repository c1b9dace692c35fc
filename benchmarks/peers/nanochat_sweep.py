"""nanochat's configurations tried at the full budget, so the comparison uses its strongest one.

    python benchmarks/peers/nanochat_sweep.py --nanochat /work/nanochat \
        --nanochat-python /work/nanochat-venv/bin/python --minutes 4 --seeds 0

A configuration picked from 1-minute trials is not the one that wins at 4 or 8 minutes: a smaller batch or
a shorter context learns faster early and loses later. So every configuration of the grid trains for the
whole budget being compared: by default context x rows 128x32 and 256x16 (both 4,096 tokens a step), depth
2 and 3, and the Muon matrix learning rate x0.5, x1 and x2 of nanochat's default (nanochat then applies
its own batch-size scaling to it, so the multiplier scales the learning rate it trains with). That is 12
runs per seed: 48 minutes at 4 minutes a run.

Each run is recorded (bits per character, steps, tokens per second, wall time, and the load average at its
start) in ``sweep.json`` in the work directory, and the table is printed sorted by mean bits per character.
``best`` names the winner's flags; ``nanochat_speedrun.py --best-from <sweep.json>`` then compares pretrain
against exactly that configuration.

The grid is only nanochat's: pretrain's side is not run here. Every graph shape (context, rows, depth) is
compiled once outside the budget first, as the comparison does for its one configuration.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nanochat_speedrun as peer  # noqa: E402  (the sibling script; benchmarks/ is not a package)

DEFAULT_MATRIX_LR = 0.02  # scripts/base_train.py --matrix-lr at nanochat 92d63d4


def parse_shape(text: str) -> tuple[int, int]:
    """'256x16' -> (context 256, 16 rows a micro-batch)."""
    try:
        ctx, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--contexts: {text!r} is not CONTEXTxROWS (e.g. 256x16)") from None
    if ctx < 1 or rows < 1:
        raise SystemExit(f"--contexts: {text!r} needs a positive context and row count")
    return ctx, rows


def grid(contexts: list[str], depths: list[int], lr_mults: list[float]) -> list[dict]:
    """Every configuration of the sweep: a label and the flags appended to nanochat's recipe."""
    configs = []
    for shape, depth, mult in itertools.product(contexts, depths, lr_mults):
        ctx, rows = parse_shape(shape)
        flags = [f"--max-seq-len={ctx}", f"--device-batch-size={rows}", f"--depth={depth}",
                 f"--matrix-lr={DEFAULT_MATRIX_LR * mult:g}"]
        configs.append({"label": f"{ctx}x{rows} d{depth} lr x{mult:g}", "shape": f"{ctx}x{rows} d{depth}",
                        "flags": " ".join(flags)})
    return configs


best_of = peer.best_of  # shared with the comparison, which pools several sweeps' runs


_positive_list = peer.positive_list


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanochat", type=Path, required=True, help=f"nanochat checkout at {peer.NANOCHAT_COMMIT}")
    ap.add_argument("--nanochat-python", type=Path, required=True, help="Python of nanochat's virtual env")
    ap.add_argument("--minutes", type=float, required=True, help="training wall time of every run")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--contexts", default="128x32,256x16", help="CONTEXTxROWS shapes (default 128x32,256x16)")
    ap.add_argument("--depths", default="2,3", help="model depths (default 2,3)")
    ap.add_argument("--lr-mults", default="0.5,1,2", help="multipliers of the default matrix LR (default 0.5,1,2)")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default runs/peers-nanochat-sweep-<M>m)")
    ap.add_argument("--chunk-chars", type=int, default=512, help="training text chunk size for nanochat")
    peer.add_dtype_flag(ap)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="before each run, wait (up to 5 minutes) until the 1-minute load average is under this "
                         "(default 1.0; 0 = do not wait)")
    args = ap.parse_args(argv)
    if args.minutes <= 0:
        ap.error(f"--minutes must be > 0 (got {args.minutes:g})")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers (got {args.seeds!r})")
    peer.resolve_dtype(args)
    configs = grid([c for c in args.contexts.split(",") if c.strip()],
                   [int(d) for d in _positive_list(args.depths, float, "--depths")],
                   _positive_list(args.lr_mults, float, "--lr-mults"))
    sys.path.insert(0, str(peer.ROOT / "src"))
    from pretrain.speedrun import shakespeare_text, split_text, text_sha256

    out = (args.out or peer.ROOT / "runs" / f"peers-nanochat-sweep-{args.minutes:g}m").resolve()
    out.mkdir(parents=True, exist_ok=True)
    train_text, val_text = split_text(shakespeare_text())
    val_sha = text_sha256(val_text)
    base_dir = out / "nanochat-base"
    args.nanochat_args = ""
    print(json.dumps(peer.prepare_nanochat(args, base_dir, out, train_text, val_text)), flush=True)

    warmed: set[str] = set()
    runs: list[dict] = []
    for cfg in configs:
        args.nanochat_args = cfg["flags"]
        if cfg["shape"] not in warmed:  # compile each graph shape once, outside every budget
            peer.warm_compile_cache(args, base_dir, out, tag="warmup-" + cfg["shape"].replace(" ", "-"))
            warmed.add(cfg["shape"])
        for seed in seeds:
            load, waited = peer.settle(args.settle)
            tag = "sweep-" + cfg["label"].replace(" ", "-") + f"-seed{seed}"  # one checkpoint folder per run
            rec = peer.run_nanochat(args, base_dir, seed, val_sha, out, tag=tag)
            rec.update(label=cfg["label"], flags=cfg["flags"], load_average_at_start=load, settle_s=waited)
            print(json.dumps(rec), flush=True)
            runs.append(rec)
            (out / "sweep.json").write_text(json.dumps({"minutes": args.minutes, "runs": runs}, indent=2))
    best = best_of(runs)
    result = {"minutes": args.minutes, "seeds": seeds, "nanochat_dtype": args.nanochat_dtype, "val_sha256": val_sha,
              "runs": runs, "best": best}
    (out / "sweep.json").write_text(json.dumps(result, indent=2))
    print(f"\nnanochat {peer.NANOCHAT_COMMIT}, {args.minutes:g} minutes a run, seeds {seeds}")
    print("| configuration | seed | bits/char | steps | tokens/s | load at start |")
    print("|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: r["val_bits_per_char"]):
        print(f"| {r['label']} | {r['seed']} | {r['val_bits_per_char']:.4f} | {r.get('steps', '')} | "
              f"{r.get('tokens_per_s', '')} | {r['load_average_at_start']} |")
    print(json.dumps({"best": best}))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
