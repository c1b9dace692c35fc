"""Score a nanochat base checkpoint with pretrain's speedrun metric. Runs under nanochat's own Python.

    NANOCHAT_BASE_DIR=DIR python nanochat_score.py --nanochat CHECKOUT --src PRETRAIN/src \
        --checkpoint-dir DIR/base_checkpoints/TAG --val-sha256 HEX

The validation text is read the way nanochat reads its validation split (the last parquet file of
$NANOCHAT_BASE_DIR/base_data_climbmix, column `text`), checked against the sha256 the benchmark computed
from pretrain's split, and scored by ``pretrain.speedrun.bits_per_char`` (imported from --src: the same
code that scores pretrain's side) in non-overlapping windows of the model's context. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


class LogitsOnly:
    """nanochat's GPT as the metric expects it: ``model(x)`` returns logits [B, T, V]. nanochat's training
    forward asserts T > 1, so a one-token window is scored with one pad token after it (the model is causal:
    the first position's logits do not depend on the second token)."""

    def __init__(self, gpt):
        self.gpt = gpt
        self.training = False

    def __call__(self, x):
        if x.shape[1] == 1:
            return self.gpt(x.repeat(1, 2))[:, :1]
        return self.gpt(x)

    def eval(self):
        self.gpt.eval()

    def train(self, mode: bool = True):
        self.gpt.train(mode)


class Encoder:
    def __init__(self, tok):
        self.tok = tok
        self.bos_id = tok.get_bos_token_id()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text)


def val_text_from_parquet(files: list[str]) -> str:
    """nanochat's validation split: the rows of the last of its (sorted) parquet files, concatenated."""
    import pyarrow.parquet as pq

    if not files:
        raise SystemExit("nanochat_score: no parquet files under $NANOCHAT_BASE_DIR/base_data_climbmix")
    return "".join(pq.read_table(files[-1], columns=["text"]).column("text").to_pylist())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanochat", type=Path, required=True, help="nanochat checkout")
    ap.add_argument("--src", type=Path, required=True, help="pretrain's src directory (for the metric)")
    ap.add_argument("--checkpoint-dir", type=Path, required=True)
    ap.add_argument("--val-sha256", required=True, help="sha256 of the validation text pretrain scores")
    args = ap.parse_args(argv)
    sys.path[:0] = [str(args.nanochat), str(args.src)]
    import torch
    from nanochat.checkpoint_manager import build_model
    from nanochat.dataset import list_parquet_files

    from pretrain.speedrun import bits_per_char, text_sha256

    steps = sorted(int(p.stem.split("_")[1]) for p in args.checkpoint_dir.glob("model_*.pt"))
    if not steps:
        raise SystemExit(f"nanochat_score: no model_*.pt in {args.checkpoint_dir}")
    model, tok, meta = build_model(str(args.checkpoint_dir), steps[-1], torch.device("cpu"), "eval")
    text = val_text_from_parquet(list_parquet_files())
    sha = text_sha256(text)
    if sha != args.val_sha256:
        raise SystemExit(f"nanochat_score: the validation text nanochat reads has sha256 {sha}, "
                         f"not the benchmark's {args.val_sha256}")
    context = meta["model_config"]["sequence_len"]
    t0 = time.perf_counter()
    torch.manual_seed(0)
    bpc = bits_per_char(LogitsOnly(model), Encoder(tok), text, context=context, batch_size=32)
    record = {
        "val_bits_per_char": round(bpc, 4),
        "train_seconds": round(meta.get("budget_time") or meta["loop_state"]["total_training_time"], 2),
        "tokens_seen": meta["step"] * meta["total_batch_size"],
        "params": sum(p.numel() for p in model.parameters()),
        "steps": meta["step"],
        "tokens_per_step": meta["total_batch_size"],
        "vocab_size": tok.get_vocab_size(),
        "context": context,
        "model_config": {k: meta["model_config"][k] for k in ("n_layer", "n_head", "n_embd", "window_pattern")},
        "val_chars": len(text),
        "val_sha256": sha,
        "eval_s": round(time.perf_counter() - t0, 2),
    }
    record["tokens_per_s"] = round(record["tokens_seen"] / record["train_seconds"], 1) if record["train_seconds"] else None
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
