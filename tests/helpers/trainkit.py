"""Helpers shared by the trainer tests: a deterministic in-memory loader and tiny configs."""

from __future__ import annotations

import torch


class ListLoader:
    """A deterministic in-memory loader obeying the PackedLoader contract: rows are served in a fixed
    order, so a batch's content depends only on how many rows came before it (not on the micro-batch)."""

    def __init__(self, n_rows: int, seq_len: int, micro_batch: int, vocab: int = 64, seed: int = 0,
                 ragged: bool = True):
        g = torch.Generator().manual_seed(seed)
        # A learnable pattern (next = (x * 3 + 1) % vocab) so losses move, plus noise.
        start = torch.randint(0, vocab, (n_rows, 1), generator=g)
        seq = [start]
        for _ in range(seq_len):
            seq.append((seq[-1] * 3 + 1) % vocab)
        rows = torch.cat(seq, dim=1)
        noise = torch.rand(rows.shape, generator=g) < 0.1
        rows = torch.where(noise, torch.randint(0, vocab, rows.shape, generator=g), rows)
        self.inputs = rows[:, :-1].contiguous()
        self.targets = rows[:, 1:].clone()
        if ragged:  # rows end early (padding) by different amounts: micro-batches hold unequal target counts
            cut = torch.randint(seq_len // 4, seq_len + 1, (n_rows,), generator=g)
            mask = torch.arange(seq_len)[None, :] >= cut[:, None]
            self.targets[mask] = -100
        self.micro_batch = micro_batch
        self.pos = 0

    def next_batch(self):
        from pretrain.data.loader import Batch

        idx = torch.arange(self.pos, self.pos + self.micro_batch) % len(self.inputs)
        self.pos += self.micro_batch
        b = len(idx)
        return Batch(self.inputs[idx], self.targets[idx], torch.zeros_like(self.inputs[idx]),
                     ["even" if int(i) % 2 == 0 else "odd" for i in idx],
                     [[("rows.bin", int(i))] for i in idx][:b])

    def state_dict(self) -> dict:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.pos = int(state["pos"])


def toy_cfg(*overrides: str):
    """A RunConfig for Trainer-level tests with ListLoader (vocab 64, tiny model)."""
    from pretrain.config import resolve

    base = ["model.vocab_size=64", "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1",
            "model.max_seq_len=16", "train.seq_len=16", "train.micro_batch=4", "train.max_steps=8",
            "train.warmup_steps=2", "train.log_interval=1", "train.peak_flops=1e11", "train.lr=1e-2"]
    return resolve("tiny", base + list(overrides))


def make_trainer(cfg, run_dir, n_rows: int = 64, fresh: bool = False, model=None, loader_cls=ListLoader, **kw):
    from pretrain.model import Transformer
    from pretrain.train.api import build_trainer

    torch.manual_seed(cfg.train.seed)
    model = model if model is not None else Transformer(cfg.model)
    return build_trainer(cfg, run_dir, model, lambda stage: loader_cls(n_rows, stage.seq_len, stage.micro_batch),
                         progress=False, fresh=fresh, **kw)
