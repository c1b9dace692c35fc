"""Model transforms (pretrain.train.parallelize): FP8 refused without FP8 hardware, the FP8 module swap,
and torch.compile per block, which must compute what the eager model computes and keep its names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from trainkit import make_trainer, toy_cfg

from pretrain.configlib import ConfigError
from pretrain.model import ModelConfig, Transformer
from pretrain.train.parallelize import compile_blocks, convert_fp8, fp8_eligible, fp8_unsupported


def small_model(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, n_kv_heads=1, max_seq_len=16, **kw))


def test_fp8_is_refused_on_cpu_before_anything_is_written(tmp_path):
    assert "this run is on cpu" in fp8_unsupported(torch.device("cpu"))
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"config field 'train.fp8': FP8 matmuls need a CUDA GPU .* on cpu"):
        make_trainer(toy_cfg("train.fp8=true", 'train.device="cpu"'), run)
    assert not run.exists()


def test_fp8_refusal_is_one_line_from_the_cli(tiny_data, tmp_path):
    args = [sys.executable, "-m", "pretrain.train", "tiny", f'data.tokens="{tiny_data.tokens}"',
            f'tokenizer.path="{tiny_data.tokenizer}"', "train.fp8=true", 'train.device="cpu"',
            "--run-dir", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config field 'train.fp8'"), proc.stderr


def test_fp8_swap_converts_the_block_linears_only():
    pytest.importorskip("torchao.float8", reason="torchao is installed by the gpu extra (make install)")
    from torchao.float8.float8_linear import Float8Linear

    model = small_model()
    keys = list(model.state_dict())
    names = convert_fp8(model)
    # the attention and SwiGLU projections of both blocks; not the output head (tied to the embedding)
    assert len(names) == 2 * 7 and all(n.startswith("layers.") for n in names)
    for name, m in model.named_modules():
        assert isinstance(m, Float8Linear) == (name in names), name
    assert not isinstance(model.lm_head, Float8Linear)
    assert list(model.state_dict()) == keys  # checkpoints load with or without FP8
    # a layer the float8 kernel cannot take (dimension not a multiple of 16) stays as it is
    assert not fp8_eligible("layers.0.attn.wq", torch.nn.Linear(24, 32))
    assert not fp8_eligible("layers.0.ffn.router", torch.nn.Linear(32, 16))


def test_compile_per_block_matches_eager():
    eager, compiled = small_model(), small_model()
    keys = list(compiled.state_dict())
    # aot_eager: Dynamo capture and AOTAutograd's joint forward/backward graph of each block, as with
    # inductor, without its C++ code generation (a minute on this CPU; the benchmark measures inductor).
    assert compile_blocks(compiled, backend="aot_eager") == 2
    assert list(compiled.state_dict()) == keys  # no _orig_mod. prefix: checkpoints are interchangeable
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    doc = torch.zeros_like(ids)
    doc[:, 9:] = 1  # two documents per row: the mask goes through the compiled blocks too
    outs = []
    for m in (eager, compiled):
        out = m(ids, ids, doc)
        loss = out.ce_sum / out.n_tokens
        loss.backward()
        outs.append((loss.detach(), [p.grad.clone() for p in m.parameters()]))
    assert all(b._compiled_call_impl is not None for b in compiled.layers)
    assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
    for g0, g1 in zip(outs[0][1], outs[1][1], strict=True):
        assert torch.allclose(g0, g1, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp8_on_gpu_tracks_bf16():
    if fp8_unsupported(torch.device("cuda")):
        pytest.skip(fp8_unsupported(torch.device("cuda")))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=256, dim=256, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128)
    ref, fp8 = Transformer(cfg).cuda(), Transformer(cfg).cuda()
    fp8.load_state_dict(ref.state_dict())
    convert_fp8(fp8)
    ids = torch.randint(0, 256, (4, 128), device="cuda")
    losses = []
    for m in (ref, fp8):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = m(ids, ids)
        (out.ce_sum / out.n_tokens).backward()
        losses.append(float(out.ce_sum / out.n_tokens))
    assert abs(losses[0] - losses[1]) < 0.05 * losses[0]
    g_ref, g_fp8 = ref.layers[0].attn.wq.weight.grad, fp8.layers[0].attn.wq.weight.grad
    assert torch.nn.functional.cosine_similarity(g_ref.flatten(), g_fp8.flatten(), dim=0) > 0.9
