"""What only a CUDA GPU can show (CI has none; a lent device runs these through
benchmarks/device/gpu_checks.sh): steps between logged ones queue their work without waiting for the GPU,
for causal and document-masked (FlexAttention) batches, with fused AdamW, Muon and MTP; a bf16 run resumes
from its checkpoint; document-masked attention at T = 32768 never allocates anything near a T x T mask.

The first two also run on the CPU (without the sync check, which is CUDA's), so their code cannot rot
where no GPU ever is."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from trainkit import ListLoader, make_trainer, toy_cfg

from conftest import tiny_cfg
from pretrain.model import ModelConfig, Transformer
from pretrain.train import train

CUDA = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


class TwoDocLoader(ListLoader):
    """ListLoader rows holding two documents each (a boundary mid-row), so the document mask applies."""

    def next_batch(self):
        b = super().next_batch()
        T = b.input_ids.shape[1]
        b.doc_ids = (torch.arange(T) >= T // 2).long().expand_as(b.input_ids).contiguous()
        return b


@pytest.mark.parametrize("optimizer, loader, extra", [
    ("adamw", ListLoader, ()), ("adamw", TwoDocLoader, ()), ("muon", TwoDocLoader, ()),
    ("adamw", TwoDocLoader, ("model.mtp.depth=1",)),  # MTP's per-depth losses stay device scalars
])  # (MoE is left out: its dispatch reads the per-expert slice sizes back, one sync per layer)
@pytest.mark.parametrize("device", DEVICES)
def test_steps_between_logged_ones_never_wait_for_the_gpu(tmp_path, device, optimizer, loader, extra):
    cfg = toy_cfg(f'train.device="{device}"', 'train.precision="bf16"', "train.log_interval=100",
                  'train.spike.policy="log"', f'train.optimizer="{optimizer}"', "train.max_steps=20",
                  "model.dim=64", "model.max_seq_len=256", "train.seq_len=256", *extra)
    tr = make_trainer(cfg, tmp_path / "run", loader_cls=loader, fresh=True)
    if optimizer == "adamw":
        assert all(o.defaults.get("fused") for o in tr.opt.optimizers)
    tr.begin()
    stage = tr.plan.stage_at(0)
    for _ in range(2):  # warm-up: kernels, library handles and compiled graphs are made here, with syncs
        tr.train_step(stage)
        tr.step += 1
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any op that waits for the device raises, naming itself
    try:
        for _ in range(3):
            metrics = tr.train_step(stage)
            tr.step += 1
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.is_tensor(metrics["loss"]) and metrics["loss"].device.type == device
    assert math.isfinite(float(metrics["loss"])) and math.isfinite(float(metrics["grad_norm"]))
    tr.log.close()


def _losses(run) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["type"] == "train"}


@pytest.mark.parametrize("device", DEVICES)
def test_a_bf16_run_resumes_where_it_stopped(tiny_data, tmp_path, device):
    cfg = tiny_cfg(tiny_data, f'train.device="{device}"', 'train.precision="bf16"', "train.max_steps=6",
                   "train.checkpoint_interval=2")
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    ref = _losses(run)
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    shutil.rmtree(run / "checkpoints" / "final")
    train(cfg, run, progress=False)  # resumes from step 4: model, AdamW state, loader position, RNG
    again = _losses(run)
    assert again.keys() == ref.keys() == set(range(1, 7))
    for step in (5, 6):
        assert again[step] == pytest.approx(ref[step], rel=1e-3), step
    assert ref[6] < ref[1]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_document_masked_attention_at_32k_allocates_far_less_than_a_t_by_t_mask():
    T = 32768
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=256, dim=64, n_layers=1, n_heads=2, n_kv_heads=1,
                                    max_seq_len=T)).cuda()
    ids = torch.randint(0, 256, (1, T), device="cuda")
    docs = (torch.arange(T, device="cuda") // 3000)[None]  # 11 documents in the row
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(ids, targets=ids, doc_ids=docs)
    loss = out.ce_sum / out.n_tokens
    loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    # One boolean T x T mask alone is T * T bytes (1 GiB); SDPA's math fallback would hold fp32 scores
    # per head on top (8 GiB). FlexAttention's block mask is T / 128 x T / 128.
    assert peak < T * T // 2, f"peak {peak / 2**20:.0f} MiB"
    assert math.isfinite(float(loss.detach()))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
