"""A run whose spike made the trainer rewind to a checkpoint and skip the spike's batches: trace step
still names exactly what was trained (and marks the skipped step), and the report lists the
documents of the spiking step."""

from __future__ import annotations

import json

from consumed import Consumed, read_consumed
from torch import nn


class SpikyModel(nn.Module):
    """A real Transformer whose forward passes numbered in ``spike_calls`` report a 100x loss."""

    def __init__(self, inner, spike_calls):
        super().__init__()
        self.inner, self.spike_calls, self.calls = inner, set(spike_calls), 0
        self.cfg = inner.cfg

    def forward(self, input_ids, targets=None, doc_ids=None):
        out = self.inner(input_ids, targets, doc_ids)
        if self.calls in self.spike_calls:
            out.ce_sum = out.ce_sum * 100.0
        self.calls += 1
        return out


def test_trace_after_a_rewind_and_the_spike_documents_in_the_report(tiny_data, tmp_path):
    import torch
    from train_conftest import tiny_cfg

    from pretrain.lineage.trace import trace_step
    from pretrain.model import Transformer
    from pretrain.report import build_report
    from pretrain.tokenizer import load_tokenizer
    from pretrain.train.api import build_loader_factory, build_trainer

    cfg = tiny_cfg(tiny_data, f"model.vocab_size={tiny_data.vocab_size}", "train.max_steps=8", "train.spike.min_history=3", "train.spike.window=8",
                   "train.spike.sigma=10", 'train.spike.policy="rewind"', "train.checkpoint_interval=4")
    tok = load_tokenizer(tiny_data.tokenizer)
    torch.manual_seed(0)
    model = SpikyModel(Transformer(cfg.model), {5})  # forward 5 = step 6: rewind to step 4, skip step 6
    run = tmp_path / "run"
    tr = build_trainer(cfg, run, model, build_loader_factory(cfg, tiny_data.tokens, tok), tokenizer_path=tiny_data.tokenizer,
                       progress=False, callbacks=[Consumed()])
    tr.fit()
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e.get("event") in ("spike", "rewind")] == ["spike", "rewind"]
    consumed = read_consumed(run)
    for step in range(1, 9):
        got = trace_step(run, step, origins=False)
        rows: dict = {}
        for d in got["documents"]:
            rows.setdefault((d["global_micro_batch"], d["row"]), []).append([d["shard"], d["index"]])
        assert rows == consumed[step], step
        assert got["trained"] == (step != 6)
    spike = next(e for e in events if e.get("event") == "spike")
    page = build_report(run).read_text()
    assert "Data provenance" in page and f"pretrain trace step {spike['step']}" in page
    assert all(entry[2] in page for entry in spike["lineage"])
