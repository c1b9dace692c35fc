"""CPU speedrun: the lowest validation bits per character on Shakespeare in M minutes of training.

    python benchmarks/cpu_speedrun.py --minutes 4 [--out DIR] [--seed S] [key=value overrides ...]

Data, split and metric: see pretrain/speedrun.py (77 texts, first 90% of characters train, last 10%
validation, bits per character over non-overlapping context windows). The recipe is the repository's
`quickstart` preset (the speedrun's winner is made its default), trained for exactly M minutes of
training wall time with the learning-rate schedule sized to that budget (the trainer measures a few
warm-up steps, then fixes the number of steps). Tokenizer training, tokenization and evaluation are
timed separately. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, required=True, help="Training wall-time budget in minutes.")
    ap.add_argument("--out", type=Path, default=None, help="Run directory (default runs/speedrun-<M>m).")
    ap.add_argument("--seed", type=int, default=0, help="Seed for initialisation and data order.")
    ap.add_argument("--preset", default="quickstart", help="Recipe to start from (default: quickstart).")
    ap.add_argument("--progress", action="store_true", help="Show the live training line.")
    ap.add_argument("overrides", nargs="*", help="Config overrides such as model.dim=192.")
    args = ap.parse_args(argv)

    import pretrain  # noqa: F401, I001  (first: it sets OpenMP's wait policy before torch loads)
    import torch
    from pretrain.config import resolve
    from pretrain.data.builtin import shakespeare_files
    from pretrain.data.record import Document, write_jsonl
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.model.io import load_model
    from pretrain.speedrun import bits_per_char, shakespeare_text, split_text, text_sha256
    from pretrain.tokenizer import train_tokenizer
    from pretrain.train.precision import resolve_precision
    from pretrain.train import train

    cfg = resolve(args.preset, [
        "name=speedrun", f"train.time_limit_s={args.minutes * 60.0}", "train.max_steps=10000000",
        f"train.seed={args.seed}", "eval.interval=0", "data.mixture.weights={}", *args.overrides,
    ])
    out = args.out or Path("runs") / f"speedrun-{args.minutes:g}m"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    timings: dict[str, float] = {}

    text = shakespeare_text()
    train_text, val_text = split_text(text)
    # Training documents: one per play, in the benchmark's order; the play the split cuts is truncated.
    docs, pos = [], 0
    for f in shakespeare_files():
        piece = (f.read_text(encoding="utf-8") + "\n")[: max(0, len(train_text) - pos)]
        if piece.strip():
            docs.append(Document(text=piece, source=f"shakespeare:{f.name}@{pos}", domain="shakespeare"))
        pos += len(piece)
    assert "".join(d.text for d in docs) == train_text

    t0 = time.perf_counter()
    cfg.tokenizer.sample_bytes_per_domain = max(cfg.tokenizer.sample_bytes_per_domain, len(train_text))
    tok = train_tokenizer(docs, cfg.tokenizer, out / "tokenizer")
    timings["tokenizer_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    write_jsonl(out / "corpus" / "train.jsonl.zst", docs)
    tokenize_corpus(out / "corpus", tok, out / "tokens", val_fraction=0.0)
    val_dir = out / "tokens" / "val"
    if val_dir.is_dir() and not any(val_dir.iterdir()):
        val_dir.rmdir()  # no held-out shards: validation is the character split, scored below
    timings["tokenize_s"] = time.perf_counter() - t0

    result = train(cfg, out, fresh=True, progress=args.progress)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_rows = [r for r in rows if r.get("type") == "train"]
    train_seconds = train_rows[-1]["time_s"] if train_rows else float("nan")
    mfus = [r["mfu"] for r in train_rows if r.get("mfu")]

    t0 = time.perf_counter()
    model = load_model(result.final_checkpoint)
    torch.manual_seed(0)
    bpc = bits_per_char(model, tok, val_text, context=cfg.train.seq_len, batch_size=32)
    timings["eval_s"] = time.perf_counter() - t0

    record = {
        "val_bits_per_char": round(bpc, 4),
        "train_seconds": round(train_seconds, 2),
        "budget_used": round(train_seconds / (args.minutes * 60.0), 4),  # the last step's end / the budget
        "tokens_seen": result.tokens,
        "params": model.num_params(),
        "tokens_per_s": round(result.tokens / train_seconds, 1) if train_seconds else None,
        "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
        "steps": result.step,
        "precision": resolve_precision(cfg.train.precision, torch.device(cfg.train.device if cfg.train.device != "auto" else "cpu")),
        "seed": args.seed,
        "minutes": args.minutes,
        "vocab_size": tok.vocab_size,
        "context": cfg.train.seq_len,
        "val_chars": len(val_text),
        "val_sha256": text_sha256(val_text),
        "overrides": args.overrides,
        **{k: round(v, 2) for k, v in timings.items()},
    }
    print(json.dumps(record))
    (out / "speedrun.json").write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
