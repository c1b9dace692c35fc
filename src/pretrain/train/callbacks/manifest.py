"""The training stage's lineage manifest: ``checkpoints/manifest.json`` (pretrain.lineage.manifest).

It names what training consumed (the token shards' and the tokenizer's manifests, the tokenizer file,
the checkpoint it started from), the resolved config and seed, the code version, the step log, and
each checkpoint by the hash of its ``meta.json`` (which holds the SHA-256 of every file in it).
Rewritten after every save and at the end, on the main process; the shards are not hashed again here
(their manifest holds their hashes, and ``pretrain verify`` checks them).
"""

from __future__ import annotations

from pathlib import Path

from pretrain.train.callbacks.base import Callback


class TrainManifest(Callback):
    order = 1010  # after the checkpointing callback: the manifest lists the checkpoint it just wrote

    def on_save(self, ctx, path) -> None:
        self._write(ctx)

    def on_train_end(self, ctx) -> None:
        self._write(ctx)

    def _write(self, ctx) -> None:
        if not ctx.dist.is_main or not ctx.run_dir.checkpoints.is_dir():
            return
        from pretrain.configlib import to_dict
        from pretrain.hashing import sha256_file
        from pretrain.lineage.manifest import MANIFEST, write_manifest

        cfg, root = ctx.run_config, ctx.run_dir.root
        tokens = Path(ctx.tokens_dir) if ctx.tokens_dir is not None else root / "tokens"
        inputs = []
        if ctx.tokenizer_path is not None and Path(ctx.tokenizer_path).is_file():
            inputs.append(("tokenizer", Path(ctx.tokenizer_path)))
        if ctx.config.init_from:
            inputs.append(("init_from", Path(ctx.config.init_from) / "meta.json"))
        ckpts = sorted(p.name + "/meta.json" for p in ctx.run_dir.checkpoints.iterdir() if (p / "meta.json").is_file())
        log = root / "lineage" / "steps.jsonl"
        # The step log only grows (a resume appends): its hash covers the bytes written so far.
        step_log = {"path": str(log.resolve()), "bytes": log.stat().st_size, "sha256": sha256_file(log)} \
            if log.is_file() else None
        write_manifest(ctx.run_dir.checkpoints, "train", inputs=[(r, p) for r, p in inputs if p.is_file()],
                       outputs=ckpts, config=to_dict(cfg), seed=ctx.config.seed,
                       consumed=[m for m in (tokens / MANIFEST,) if m.is_file()],
                       extra={"step": ctx.state.step, "tokens": ctx.state.tokens, "step_log": step_log,
                              "tokens_dir": str(tokens.resolve())})
