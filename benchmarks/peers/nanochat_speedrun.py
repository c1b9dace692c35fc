"""The CPU speedrun side by side with karpathy/nanochat: same split, same training wall time, same metric.

    python benchmarks/peers/nanochat_speedrun.py --nanochat /work/nanochat \
        --nanochat-python /work/nanochat-venv/bin/python --minutes 4,8 --seeds 0,1 \
        --best-from runs/peers-nanochat-sweep-4m/sweep.json

For each budget (``--minutes 4,8``: 4 minutes on every seed, then 8) and each seed, pretrain's side
(benchmarks/cpu_speedrun.py, the quickstart recipe) trains and is scored, then nanochat's side: its own
tokenizer (scripts.tok_train) and base model (scripts.base_train) on the same training characters, for the
same wall time, scored by the same ``pretrain.speedrun.bits_per_char`` on the same validation characters (both
records carry the text's sha256; the run stops if they differ). Prints each side's JSON line, then a summary
line per budget with the differences (nanochat - pretrain) and the ratio of tokens per second. Odd seeds run
nanochat's side first (both orders), and every run waits until the 1-minute load average is under --settle
(1.0) so that it is not measured against the echo of the run before it; each record carries the load average
at its start and the seconds waited.

nanochat is not a dependency: pass a checkout of commit 92d63d4 (NANOCHAT_COMMIT) and a Python that has
its packages (benchmarks/peers/README.md says how to make both). benchmarks/peers/nanochat.patch (a
wall-time budget re-planned like pretrain's, a seed, an eager switch) is applied to the checkout first.

How nanochat gets the text: its loader starts every row at a document start and crops what does not fit
(bos_bestfit), so whole plays would lose all but their first context's worth of tokens. The training text
is therefore handed over in chunks of at most --chunk-chars characters cut at line ends (one parquet row
each, in order; their concatenation is the training split), and the validation text as one row of the
last parquet file, which is where nanochat reads its validation split from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_choice import best_flags, best_of, parse_minutes, positive_list, shared_vocab  # noqa: E402, F401

ROOT = Path(__file__).resolve().parents[2]
PATCH = Path(__file__).resolve().with_name("nanochat.patch")
NANOCHAT_COMMIT = "92d63d4"
# sha256 prefixes of files the patch does not touch, at NANOCHAT_COMMIT: another commit is refused.
PINNED = {"nanochat/gpt.py": "8cdedc2e418b9d4d", "nanochat/optim.py": "7c9b714c6f76e3a9",
          "nanochat/dataloader.py": "5cc72d7207931f11", "nanochat/tokenizer.py": "e6f12cb88fead3e6",
          "nanochat/checkpoint_manager.py": "aa63399ddaf2a041", "scripts/tok_train.py": "93237def990ddd96"}
# nanochat's recipe for a few CPU minutes: its single dial (--depth) with its own scaling rules for batch
# size, learning rates and weight decay, plus the settings 1-minute trials favoured (docs/performance.md).
# Its automatic batch (from a data:param horizon of 12) is 65,536 tokens, ~50 steps in 4 minutes: a user with
# a time budget sets the batch instead, and nanochat rescales learning rates and weight decay to it.
# Context 128 (micro-batch 32, the same 4,096 tokens a step) beat 256 in a 1-minute trial, as it did for
# pretrain's recipe; --nanochat-args "--max-seq-len=256 --device-batch-size=16" restores the setting.
NANOCHAT_RECIPE = ["--depth=2", "--head-dim=64", "--max-seq-len=128", "--device-batch-size=32",
                   "--total-batch-size=4096", "--window-pattern=L"]
NANOCHAT_VOCAB = 1024  # the quickstart's vocabulary size; a run that overrides pretrain's gives nanochat the same


def check_checkout(path: Path) -> None:
    """Refuse a checkout that is not NANOCHAT_COMMIT (files the patch leaves alone must match)."""
    for rel, want in PINNED.items():
        f = path / rel
        if not f.is_file():
            raise SystemExit(f"{path}: no {rel}; pass a nanochat checkout (commit {NANOCHAT_COMMIT})")
        got = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        if got != want:
            raise SystemExit(f"{f}: differs from nanochat {NANOCHAT_COMMIT} (sha256 {got}..., want {want}...)")


def apply_patch(path: Path) -> str:
    """Apply benchmarks/peers/nanochat.patch unless it is already applied; returns what was done."""
    def git_apply(*flags: str) -> bool:
        return subprocess.run(["git", "apply", *flags, str(PATCH)], cwd=path, capture_output=True).returncode == 0

    target = path / "scripts" / "base_train.py"
    pristine = target.with_name("base_train.py.orig")  # kept at the first apply, so a newer patch can replace it
    if git_apply("--reverse", "--check"):
        return "already applied"
    if not git_apply("--check"):
        if not pristine.is_file():
            raise SystemExit(f"{PATCH.name} does not apply to {target} (edited checkout? restore the file from "
                             f"nanochat {NANOCHAT_COMMIT} and run again)")
        shutil.copyfile(pristine, target)  # an older version of the patch was applied: start again from the original
        if not git_apply("--check"):
            raise SystemExit(f"{PATCH.name} does not apply to {pristine} (edited checkout?)")
        git_apply()
        return "re-applied (the patch changed)"
    if not pristine.is_file():
        shutil.copyfile(target, pristine)
    git_apply()
    return "applied"


def chunk_lines(text: str, max_chars: int) -> list[str]:
    """Cut text after line ends into pieces of at most max_chars (a longer line stays whole)."""
    if max_chars < 1:
        raise ValueError(f"--chunk-chars must be >= 1 (got {max_chars})")
    chunks, start = [], 0
    while start < len(text):
        end = start + max_chars
        if end >= len(text):
            chunks.append(text[start:])
            break
        cut = text.rfind("\n", start, end)
        if cut < start:  # no line end inside: take the whole (long) line
            cut = text.find("\n", end)
            cut = len(text) - 1 if cut < 0 else cut
        chunks.append(text[start:cut + 1])
        start = cut + 1
    return chunks


def write_nanochat_data(base_dir: Path, train_text: str, val_text: str, chunk_chars: int) -> dict:
    """nanochat's dataset layout: base_data_climbmix/shard_00000.parquet (training chunks) and
    shard_00001.parquet (the validation text, one row: the last file is nanochat's validation split)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = base_dir / "base_data_climbmix"
    data.mkdir(parents=True, exist_ok=True)
    chunks = chunk_lines(train_text, chunk_chars)
    pq.write_table(pa.table({"text": chunks}), data / "shard_00000.parquet", row_group_size=1024)
    pq.write_table(pa.table({"text": [val_text]}), data / "shard_00001.parquet")
    return {"train_chunks": len(chunks), "train_chars": len(train_text), "val_chars": len(val_text)}


def run_logged(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"{shlex.join(cmd[1:4])} failed (exit {rc}, log {log}): {' | '.join(tail)}")
    return time.perf_counter() - t0


def nanochat_env(base_dir: Path, dtype: str | None = None) -> dict:
    env = dict(os.environ, NANOCHAT_BASE_DIR=str(base_dir), WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)  # nanochat runs in its own environment
    if dtype:
        env["NANOCHAT_DTYPE"] = dtype  # nanochat's own switch (nanochat/common.py)
    return env  # OMP_WAIT_POLICY is inherited: both sides run under the same OpenMP wait policy


def default_dtype() -> str:
    """nanochat's compute dtype under the precision policy pretrain's side follows (train.precision=auto):
    bf16 where the CPU multiplies bf16 natively (AVX512-BF16 / AMX), fp32 elsewhere. nanochat's own CPU
    default is fp32 whatever the CPU; NANOCHAT_DTYPE=bfloat16 is its documented switch."""
    import torch

    if ROOT.joinpath("src").is_dir() and str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    from pretrain.train.precision import native_bf16

    return "bfloat16" if native_bf16(torch.device("cpu")) else "float32"


def train_cmd(args, seconds: float, seed: int, tag: str) -> list[str]:
    return [str(args.nanochat_python), "-m", "scripts.base_train", "--device-type=cpu", "--run=dummy",
            f"--time-budget={seconds}", f"--seed={seed}", f"--model-tag={tag}", "--eval-every=-1",
            "--core-metric-every=-1", "--sample-every=-1", *NANOCHAT_RECIPE, *shlex.split(args.nanochat_args)]


def warm_compile_cache(args, base_dir: Path, out: Path, tag: str = "warmup") -> float | None:
    """One step of the recipe outside the budget, so torch.compile's inductor cache is warm for every seed
    (as for a user's second run); None when the recipe runs eager."""
    flags = [*NANOCHAT_RECIPE, *shlex.split(args.nanochat_args)]
    if [f for f in flags if f.startswith("--compile")][-1:] == ["--compile=0"]:
        return None
    return run_logged(train_cmd(args, 1.0, 0, tag), args.nanochat, nanochat_env(base_dir, args.nanochat_dtype),
                      out / f"nanochat-{tag}.log")


def prepare_nanochat(args, base_dir: Path, out: Path, train_text: str, val_text: str) -> dict:
    """Check and patch the checkout, write its data, train its tokenizer; returns what was done."""
    if not args.nanochat_python.is_file():
        raise SystemExit(f"--nanochat-python {args.nanochat_python}: no such file")
    check_checkout(args.nanochat)
    patched = apply_patch(args.nanochat)
    if base_dir.exists():
        shutil.rmtree(base_dir)
    info = write_nanochat_data(base_dir, train_text, val_text, args.chunk_chars)
    vocab = getattr(args, "vocab", NANOCHAT_VOCAB)
    tok_s = run_logged([str(args.nanochat_python), "-m", "scripts.tok_train", f"--vocab-size={vocab}"],
                       args.nanochat, nanochat_env(base_dir), out / "nanochat-tokenizer.log")
    return {"nanochat": str(args.nanochat), "commit": NANOCHAT_COMMIT, "patch": patched,
            "tokenizer_s": round(tok_s, 1), "vocab_size": vocab, **info}


def load_average() -> float:
    """The 1-minute load average now (recorded at the start of every run: a margin must hold on a quiet machine)."""
    return round(os.getloadavg()[0], 2)


def settle(threshold: float, max_wait_s: float = 300.0) -> tuple[float, float]:
    """Wait until the 1-minute load average is under ``threshold`` (0: do not wait), at most ``max_wait_s``;
    returns (load average, seconds waited). A run that has just ended leaves the average near the number of
    threads it used for a minute or so: the next run should not start measured against its own echo."""
    t0 = time.perf_counter()
    while threshold > 0 and load_average() >= threshold and time.perf_counter() - t0 < max_wait_s:
        time.sleep(5.0)
    return load_average(), round(time.perf_counter() - t0, 1)


def run_nanochat(args, base_dir: Path, seed: int, val_sha: str, out: Path, tag: str | None = None) -> dict:
    env = nanochat_env(base_dir, args.nanochat_dtype)
    tag = tag or f"seed{seed}"
    ckpt = base_dir / "base_checkpoints" / tag
    if ckpt.exists():  # the scorer reads the highest step there: a shorter rerun must not be scored as the old run
        shutil.rmtree(ckpt)
    wall = run_logged(train_cmd(args, args.minutes * 60.0, seed, tag), args.nanochat, env,
                      out / f"nanochat-train-{tag}.log")
    score = subprocess.run([str(args.nanochat_python), str(Path(__file__).with_name("nanochat_score.py")),
                            "--nanochat", str(args.nanochat), "--src", str(ROOT / "src"),
                            "--checkpoint-dir", str(base_dir / "base_checkpoints" / tag), "--val-sha256", val_sha],
                           env=env, capture_output=True, text=True)
    if score.returncode:
        raise SystemExit(f"nanochat scoring failed: {score.stderr.strip().splitlines()[-1:]}")
    record = json.loads(score.stdout.strip().splitlines()[-1])
    record.update(side="nanochat", seed=seed, minutes=args.minutes, train_process_s=round(wall, 1),
                  args=[*NANOCHAT_RECIPE, *shlex.split(args.nanochat_args)], dtype=args.nanochat_dtype)
    return record


def add_dtype_flag(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--nanochat-dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                    help="nanochat's compute dtype (NANOCHAT_DTYPE); auto = the policy pretrain's side follows: "
                         "bfloat16 on CPUs with native bf16, else float32")


def resolve_dtype(args) -> None:
    if args.nanochat_dtype == "auto":
        args.nanochat_dtype = default_dtype()


def run_pretrain(args, seed: int, out: Path) -> dict:
    """pretrain's side in a fresh process per seed, as nanochat's runs are, so no seed inherits another's
    compiled graphs, threads or memory."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "cpu_speedrun.py"), "--minutes", str(args.minutes),
           "--seed", str(seed), "--out", str(out / f"pretrain-seed{seed}"), *args.overrides]
    log = out / f"pretrain-seed{seed}.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"pretrain's speedrun (seed {seed}) failed with exit code {proc.returncode}; see {log}")
    return json.loads(lines[-1])


def compare_budget(args, minutes: float, seeds: list[int], out: Path, base_dir: Path, val_sha: str) -> tuple[list, dict]:
    """Both sides on every seed at one training budget; returns the records and their summary."""
    args.minutes = minutes  # run_pretrain and run_nanochat read the budget from args
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for seed in seeds:
        sides = [s for s in (("pretrain", "nanochat") if seed % 2 == 0 or args.alternate is False
                              else ("nanochat", "pretrain")) if args.only in ("both", s)]
        for side in sides:  # odd seeds run nanochat first: both orders, so drift favours neither side
            load, waited = settle(args.settle)
            rec = (run_pretrain(args, seed, out) if side == "pretrain"
                   else run_nanochat(args, base_dir, seed, val_sha, out, tag=f"{minutes:g}m-seed{seed}"))
            rec.update(side=side, minutes=minutes, load_average_at_start=load, settle_s=waited)
            print(json.dumps(rec), flush=True)
            records.append(rec)
    for r in records:
        if r["val_sha256"] != val_sha:
            raise SystemExit(f"{r['side']} scored text with sha256 {r['val_sha256']}, not the split's {val_sha}")
    summary: dict = {"minutes": minutes, "seeds": seeds, "val_sha256": val_sha}
    for side in ("pretrain", "nanochat"):
        bpc = [r["val_bits_per_char"] for r in records if r["side"] == side]
        if bpc:
            summary[f"{side}_bits_per_char"] = round(sum(bpc) / len(bpc), 4)
            summary[f"{side}_tokens_per_s"] = round(sum(r["tokens_per_s"] for r in records if r["side"] == side) / len(bpc))
    if "pretrain_bits_per_char" in summary and "nanochat_bits_per_char" in summary:
        summary["nanochat_minus_pretrain"] = round(summary["nanochat_bits_per_char"] - summary["pretrain_bits_per_char"], 4)
        summary["tokens_per_s_ratio"] = round(summary["pretrain_tokens_per_s"] / summary["nanochat_tokens_per_s"], 3)
    print(json.dumps(summary), flush=True)
    (out / "summary.json").write_text(json.dumps({"records": records, "summary": summary}, indent=2))
    return records, summary


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanochat", type=Path, required=True, help=f"nanochat checkout at {NANOCHAT_COMMIT}")
    ap.add_argument("--nanochat-python", type=Path, required=True, help="Python of nanochat's virtual env")
    ap.add_argument("--minutes", required=True,
                    help="training wall time per side and seed; several budgets comma-separated (4,8) run one "
                         "after the other in this invocation, each in its own folder <out>/<M>m")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default runs/peers-nanochat-<M>m)")
    ap.add_argument("--chunk-chars", type=int, default=512, help="training text chunk size for nanochat")
    ap.add_argument("--nanochat-args", default="", help="extra scripts.base_train flags, e.g. '--depth=3'")
    ap.add_argument("--only", choices=["both", "pretrain", "nanochat"], default="both")
    ap.add_argument("--best-from", type=Path, action="append", default=None,
                    help="sweep.json of benchmarks/peers/nanochat_sweep.py: nanochat runs the sweep's best "
                         "configuration; repeat the flag to pool several sweeps' runs")
    add_dtype_flag(ap)
    ap.add_argument("--same-order", dest="alternate", action="store_false",
                    help="run pretrain first for every seed (default: odd seeds run nanochat first)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="before each run, wait (up to 5 minutes) until the 1-minute load average is under this "
                         "(default 1.0; 0 = do not wait); the load at the start is recorded either way")
    ap.add_argument("overrides", nargs="*", help="pretrain config overrides (as for cpu_speedrun.py)")
    args = ap.parse_args(argv)
    budgets = parse_minutes(args.minutes)
    args.vocab = shared_vocab(args.overrides, NANOCHAT_VOCAB)
    resolve_dtype(args)
    if args.best_from:
        args.nanochat_args = " ".join([best_flags(args.best_from), args.nanochat_args]).strip()
    sys.path.insert(0, str(ROOT / "src"))
    from pretrain.speedrun import shakespeare_text, split_text, text_sha256

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers (got {args.seeds!r})")
    out = (args.out or ROOT / "runs" / f"peers-nanochat-{'-'.join(f'{m:g}' for m in budgets)}m").resolve()
    out.mkdir(parents=True, exist_ok=True)
    train_text, val_text = split_text(shakespeare_text())
    val_sha = text_sha256(val_text)
    base_dir = out / "nanochat-base"
    if args.only != "pretrain":
        info = prepare_nanochat(args, base_dir, out, train_text, val_text)
        warm_s = warm_compile_cache(args, base_dir, out)
        print(json.dumps({**info, "nanochat_args": args.nanochat_args,
                          "compile_warmup_s": warm_s and round(warm_s, 1)}), flush=True)
    summaries = []
    for minutes in budgets:  # one data preparation and compile warm-up serve every budget
        _, summary = compare_budget(args, minutes, seeds, out / f"{minutes:g}m" if len(budgets) > 1 else out,
                                    base_dir, val_sha)
        summaries.append(summary)
    if len(budgets) > 1:
        (out / "summary.json").write_text(json.dumps({"summaries": summaries}, indent=2))
        print(json.dumps({"summaries": summaries}))
    return summaries


if __name__ == "__main__":
    main(sys.argv[1:])
