"""A run whose time budget re-planned its length while it trained, with a mixture scheduled over the
training progress: the domain of every row depends on the total the budget chose, and trace step
still names exactly what was trained."""

from __future__ import annotations

import json

from consumed import Consumed, read_consumed


def test_trace_under_a_time_budget_and_a_mixture_schedule(tiny_data, tmp_path):
    import torch
    from train_conftest import tiny_cfg

    from pretrain.lineage.steplog import read_log
    from pretrain.lineage.trace import trace_step
    from pretrain.model import Transformer
    from pretrain.tokenizer import load_tokenizer
    from pretrain.train.api import build_loader_factory, build_trainer

    cfg = tiny_cfg(tiny_data, f"model.vocab_size={tiny_data.vocab_size}", "train.max_steps=20000",
                   "train.time_limit_s=2", "train.checkpoint_interval=0",
                   "data.mixture.schedule=[{at=0.0, weights={prose=1.0}}, {at=1.0, weights={code=1.0}}]")
    torch.manual_seed(0)
    run = tmp_path / "run"
    build_trainer(cfg, run, Transformer(cfg.model), build_loader_factory(cfg, tiny_data.tokens, load_tokenizer(tiny_data.tokenizer)),
                  tokenizer_path=tiny_data.tokenizer, progress=False, callbacks=[Consumed()]).fit()
    log = read_log(run)
    assert len({p[3] for p in log.plans}) >= 2  # the budget changed the total the progress is measured against
    consumed = read_consumed(run)
    steps = sorted(consumed)
    assert steps == list(range(1, log.last_step + 1))
    domains = set()
    for step in sorted({*steps[::len(steps) // 8 + 1], *steps[-3:]}):  # a sample: each trace replays from step 1
        got = trace_step(run, step, origins=False)
        rows: dict = {}
        for d in got["documents"]:
            rows.setdefault((d["global_micro_batch"], d["row"]), []).append([d["shard"], d["index"]])
            domains.add(d["domain"])
        assert rows == consumed[step], step
    assert domains == {"prose", "code"}
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "time_budget" for e in events)
