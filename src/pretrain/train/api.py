"""``train(cfg, run_dir)``: wire the run's tokenizer, shards, model, loader and evaluation into a Trainer.

Data: token shards at ``cfg.data.tokens`` or ``<run>/tokens`` (train/ and val/ splits), tokenizer at
``cfg.tokenizer.path`` or ``<run>/tokenizer/tokenizer.json``; ``cfg.model.vocab_size == 0`` takes the
vocabulary size from the tokenizer.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from pretrain import configlib
from pretrain.config import RunConfig, save
from pretrain.rundir import RunDir
from pretrain.train.snapshot import RunRecord
from pretrain.train.stages import Stage
from pretrain.train.trainer import LoaderFactory, Trainer, TrainResult


def resolve_paths(cfg: RunConfig, run: RunDir) -> tuple[Path, Path]:
    tokens = Path(cfg.data.tokens) if cfg.data.tokens else run.tokens
    tok = Path(cfg.tokenizer.path) if cfg.tokenizer.path else run.tokenizer / "tokenizer.json"
    if tok.is_dir():
        tok = tok / "tokenizer.json"
    if not tok.is_file():
        raise FileNotFoundError(f"tokenizer not found: {tok} (set tokenizer.path or run `pretrain tokenizer train`)")
    if not (tokens / "train").is_dir():
        raise FileNotFoundError(f"no train/ split under token directory {tokens} (set data.tokens or run `pretrain tokenize`)")
    return tokens, tok


def init_weights(model, source: str | Path) -> None:
    """Copy the weights of the checkpoint at ``source`` into ``model`` (continued pre-training)."""
    from pretrain.model.io import load_model

    src = load_model(source)
    ours, theirs = model.state_dict(), src.state_dict()
    bad = [k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape]
    if bad or len(theirs) != len(ours):
        raise ValueError(f"config field 'train.init_from': the model in {source} does not match model.* "
                         f"(first mismatch: {(bad or sorted(set(theirs) - set(ours)))[0]})")
    model.load_state_dict(theirs)


def stage_seed(seed: int, stage: Stage) -> int:
    """Each stage reads its own document order (a new stage does not replay the first documents)."""
    return seed + 7919 * stage.index


def build_loader_factory(cfg: RunConfig, tokens_dir: Path, tokenizer):
    """(stage) -> PackedLoader over the train split with the stage's context, micro-batch and mixture."""
    from pretrain.data.loader import PackedLoader
    from pretrain.data.loader_config import MixtureConfig
    from pretrain.data.mixture import Mixture
    from pretrain.data.shards import load_split

    shards = load_split(tokens_dir, "train", tokenizer.hash)
    domain_tokens = {d: s.num_tokens for d, s in shards.items()}

    def make(stage: Stage):
        mix_cfg = cfg.data.mixture
        if stage.cfg.mixture:
            mix_cfg = MixtureConfig(weights=dict(stage.cfg.mixture))
        elif stage.kind == "anneal" and cfg.data.mixture.anneal_weights:
            mix_cfg = MixtureConfig(weights=dict(cfg.data.mixture.anneal_weights))
        loader_cfg = copy.deepcopy(cfg.data.loader)
        loader_cfg.doc_mask = stage.cfg.doc_mask
        # One global stream; the trainer calls loader.shard(rank, world) so each rank builds only its
        # micro-batches (see pretrain.data.loader).
        return PackedLoader(shards, stage.seq_len, stage.micro_batch, Mixture(mix_cfg, domain_tokens), loader_cfg,
                            special=tokenizer, seed=stage_seed(cfg.train.seed, stage))

    return make


def build_evaluator(cfg: RunConfig, tokens_dir: Path, tokenizer):
    """(model, seq_len) -> eval row (val_loss, val_bpb, per domain) on the held-out split, or None if absent."""
    if not (tokens_dir / "val").is_dir():
        return None, None
    from pretrain.eval.heldout import evaluate_heldout, load_split_docs, metrics_row

    docs = load_split_docs(tokens_dir, "val", cfg.eval.max_docs_per_domain, cfg.eval.max_tokens_per_domain)

    def evaluate(model, seq_len: int) -> dict:
        device = next(model.parameters()).device
        result = evaluate_heldout(model, docs, cfg.eval.seq_len or seq_len, cfg.eval.batch_size, device,
                                  tokenizer.bos_id)
        return metrics_row(result)

    def needle(model, seq_len: int) -> float | None:
        from pretrain.eval.needle import run_needle

        texts = [tokenizer.decode(list(map(int, d.tokens))) for ds in docs.values() for d in ds[:50]]
        device = next(model.parameters()).device
        nc = cfg.eval.needle
        res = run_needle(model, tokenizer, texts, [seq_len], depths=tuple(nc.depths), trials=nc.trials,
                         batch_size=cfg.eval.batch_size, device=device, seed=nc.seed, value_digits=nc.value_digits)
        return float(res.overall_accuracy)

    return evaluate, needle


def run_record(cfg: RunConfig, tokens_dir: Path | None = None) -> RunRecord:
    """What checkpoints record of ``cfg``: the whole config (read at each save), the mixture, the shards."""
    if tokens_dir is None and cfg.data.tokens:
        tokens_dir = Path(cfg.data.tokens)
    return RunRecord(config=lambda: configlib.to_dict(cfg), mixture=configlib.to_dict(cfg.data.mixture),
                     tokens_dir=tokens_dir)


def build_trainer(cfg: RunConfig, run_dir: RunDir | Path, model, make_loader: LoaderFactory,
                  tokens_dir: Path | None = None, **kwargs) -> Trainer:
    """The composition root of the loop: the Trainer gets ``cfg.train``, the evaluation cadence and the
    run record, never the RunConfig itself. ``kwargs``: the Trainer's (evaluator, callbacks, fresh, ...)."""
    return Trainer(cfg.train, run_dir, model, make_loader, eval_interval=cfg.eval.interval,
                   record=run_record(cfg, tokens_dir), **kwargs)


def benchmark_callbacks(cfg: RunConfig, tokenizer) -> list:
    """eval.tasks -> the callback that scores them at the evaluation cadence (none when empty)."""
    if not cfg.eval.tasks:
        return []
    from pretrain.eval.intrain import TaskScorer
    from pretrain.train.callbacks.benchmarks import Benchmarks

    scorer = TaskScorer(list(cfg.eval.tasks), tokenizer, cfg.eval.task_limit, list(cfg.eval.task_paths),
                        cfg.eval.batch_size)
    return [Benchmarks(scorer, cfg.eval.interval)]


def train(cfg: RunConfig, run_dir: RunDir | Path, fresh: bool = False, progress: bool = True,
          started_at: float | None = None) -> TrainResult:
    """Train ``cfg`` in ``run_dir`` (resuming from its latest valid checkpoint unless ``fresh``).
    ``started_at``: when the work began (the CLI passes its process start), for the goodput's start-up part."""
    import os
    import time

    from pretrain.train import goodput
    from pretrain.train.lock import RunLock
    from pretrain.train.precision import resolve_device

    goodput.set_start(time.time() if started_at is None else started_at)
    resolve_device(cfg.train.device)  # a missing device fails before anything is written
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    run.make()
    main = int(os.environ.get("RANK", "0")) == 0
    lock = RunLock(run.root)
    if main:  # before config.toml is written: a second trainer must not touch the directory
        lock.acquire()
    try:
        return _train(cfg, run, fresh, progress)
    finally:
        lock.release()


def _train(cfg: RunConfig, run: RunDir, fresh: bool, progress: bool) -> TrainResult:
    from pretrain.model import Transformer
    from pretrain.tokenizer import load_tokenizer

    tokens_dir, tok_path = resolve_paths(cfg, run)
    tokenizer = load_tokenizer(tok_path)
    cfg = copy.deepcopy(cfg)
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = tokenizer.vocab_size
    elif cfg.model.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"config field 'model.vocab_size': {cfg.model.vocab_size} < the tokenizer's "
                         f"{tokenizer.vocab_size} ({tok_path})")
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        save(cfg, run.config)
    torch.manual_seed(cfg.train.seed)
    model = Transformer(cfg.model)
    if cfg.train.init_from:
        init_weights(model, cfg.train.init_from)
    make_loader = build_loader_factory(cfg, tokens_dir, tokenizer)
    evaluator, needle = build_evaluator(cfg, tokens_dir, tokenizer)
    trainer = build_trainer(cfg, run, model, make_loader, tokens_dir=tokens_dir, evaluator=evaluator, needle=needle,
                            tokenizer_path=tok_path, fresh=fresh, progress=progress,
                            callbacks=benchmark_callbacks(cfg, tokenizer))
    try:
        result = trainer.fit()
        # Every rank is past its last collective before any tears its process group down: a gloo rank that
        # destroyed its group while a peer still held the connections was seen to abort at exit ("terminate
        # called without an active exception", 1 run of the test suite in ~5). Only on the way out of a
        # finished run: after an error a peer may never reach the barrier.
        trainer.dist.barrier()
        return result
    finally:
        from pretrain.train.distributed import shutdown

        trainer.log.close()  # idempotent; stops the live line if the run failed
        shutdown(trainer.dist)
