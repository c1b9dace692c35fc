"""A run over two epochs of its one domain (with FIM): each epoch has its own document order, and trace
step / trace doc follow a document into every epoch that trained on it."""

from __future__ import annotations

from consumed import Consumed, read_consumed


def test_trace_across_epochs(tiny_data, tmp_path):
    import torch
    from train_conftest import tiny_cfg

    from pretrain.lineage.trace import trace_doc, trace_step
    from pretrain.model import Transformer
    from pretrain.tokenizer import load_tokenizer
    from pretrain.train.api import build_loader_factory, build_trainer

    cfg = tiny_cfg(tiny_data, f"model.vocab_size={tiny_data.vocab_size}", "train.micro_batch=8", "train.max_steps=45",
                   "train.checkpoint_interval=20", "data.mixture.weights={code=1.0}", "data.loader.fim.rate=0.5",
                   "eval.max_docs_per_domain=1")
    torch.manual_seed(0)
    run = tmp_path / "run"
    build_trainer(cfg, run, Transformer(cfg.model), build_loader_factory(cfg, tiny_data.tokens, load_tokenizer(tiny_data.tokenizer)),
                  tokenizer_path=tiny_data.tokenizer, progress=False, callbacks=[Consumed()]).fit()
    consumed = read_consumed(run)
    epochs: set[int] = set()
    first = None
    for step in range(1, 46):
        got = trace_step(run, step, origins=False)
        rows: dict = {}
        for d in got["documents"]:
            rows.setdefault((d["global_micro_batch"], d["row"]), []).append([d["shard"], d["index"]])
            epochs.add(d["epoch"])
        assert rows == consumed[step], step
        first = first or got["documents"][0]
    assert epochs == {0, 1, 2}
    traced = trace_doc(run, first["id"])
    assert {s["epoch"] for s in traced["steps"]} >= {0, 1}
    for s in traced["steps"]:
        want = {k for k, row in consumed[s["step"]].items() if [first["shard"], first["index"]] in row}
        assert {(r["global_micro_batch"], r["row"]) for r in s["rows"]} == want
