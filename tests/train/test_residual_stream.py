"""The precision policy's residual stream (train.residual_stream) and the compiled gradient clipping."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from trainkit import make_trainer, toy_cfg

from pretrain.configlib import ConfigError
from pretrain.train.clipping import GradClipper, fits_compiled
from pretrain.train.precision import apply_precision_map, apply_residual_stream, resolve_residual_stream

# The quickstart's model levers on a toy shape: value embedding, smear gate, x0 mix, QK-norm, soft-capping.
LEVERS = ('model.value_embeddings="-V"', "model.smear_gate=true", "model.x0_mix=true", "model.qk_norm=true",
          "model.logit_softcap=15.0", "model.mlp_gated=false", 'model.activation="relu2"', "model.tie_embeddings=false")


def _model(stream: str):
    from pretrain.model import Transformer

    cfg = toy_cfg(*LEVERS)
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    apply_precision_map(model, cfg.train.fp32_modules, "bf16", stream)
    apply_residual_stream(model, stream)
    return model


def _stream_dtypes(model, ids):
    """The dtypes of each block's output and of the final norm's output in one bf16 autocast forward."""
    seen: dict[str, torch.dtype] = {}
    for i, layer in enumerate(model.layers):
        layer.register_forward_hook(lambda m, a, o, i=i: seen.update({f"block{i}": o[0].dtype}))
    model.norm.register_forward_hook(lambda m, a, o: seen.update(norm=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, targets=ids)
    return seen, out


def test_compute_stream_keeps_activations_in_bf16_and_the_loss_and_grads_in_fp32():
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    seen, out = _stream_dtypes(_model("compute"), ids)
    assert set(seen.values()) == {torch.bfloat16}, seen
    assert out.ce_sum.dtype == torch.float32 and torch.isfinite(out.loss)
    seen32, out32 = _stream_dtypes(_model("fp32"), ids)
    assert set(seen32.values()) == {torch.float32}, seen32
    # Same weights, same maths in another rounding: the losses agree to bf16's precision.
    assert float(out.loss.detach()) == pytest.approx(float(out32.loss.detach()), rel=2e-2)
    out.loss.backward()


def test_compute_stream_changes_nothing_outside_autocast():
    """Evaluation on the CPU runs without autocast: the hooks must leave the fp32 model exactly as it was."""
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(2))
    hooked, plain = _model("compute"), _model("fp32")
    with torch.no_grad():
        a, b = hooked(ids).logits, plain(ids).logits
    assert a.dtype == torch.float32 and torch.equal(a, b)


def test_routers_keep_an_fp32_result_under_the_compute_stream():
    from pretrain.model.layers import RMSNorm

    model = _model("compute")
    x = torch.randn(3, 32, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert isinstance(model.norm, RMSNorm) and model.norm(x).dtype == torch.bfloat16
        assert model.layers[0].attn_post_norm(x).dtype == torch.bfloat16  # an absent norm keeps the dtype
    router = torch.nn.Linear(32, 4)
    holder = torch.nn.ModuleDict({"router": router})
    assert apply_precision_map(holder, ["router"], "bf16", "compute") == ["router"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert holder["router"](x).dtype == torch.float32


def test_resolve_residual_stream():
    assert resolve_residual_stream("auto", "bf16") == "compute"
    assert resolve_residual_stream("auto", "fp16") == "fp32"  # fp16's range: the stream stays fp32
    assert resolve_residual_stream("compute", "fp16") == "compute"
    assert resolve_residual_stream("fp32", "bf16") == "fp32"
    assert resolve_residual_stream("compute", "fp32") == "fp32"  # no autocast, nothing to lower


def test_trainer_logs_the_stream_and_the_tiny_preset_stays_fp32(tmp_path):
    tr = make_trainer(toy_cfg('train.precision="bf16"', "train.max_steps=3"), tmp_path / "bf16")
    res = tr.fit()
    assert tr.residual_stream == "compute" and all(torch.isfinite(torch.tensor(h)) for h in res.history)
    assert all(p.dtype == torch.float32 for p in tr.raw.parameters())
    start = next(json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()
                 if '"start"' in x)
    assert start["residual_stream"] == "compute"
    tiny = make_trainer(toy_cfg("train.max_steps=2"), tmp_path / "tiny")
    assert tiny.precision == "fp32" and tiny.residual_stream == "fp32"
    assert tr.stepper.clipper.fn is None and tiny.stepper.clipper.fn is None  # eager clipping without compile
    compiled = make_trainer(toy_cfg("train.compile=true"), tmp_path / "compiled")  # built, not run: no compile yet
    assert compiled.stepper.clipper.fn is not None


def test_a_bad_residual_stream_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.residual_stream") as exc:
        toy_cfg('train.residual_stream="bf32"')
    assert "\n" not in str(exc.value)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bad = subprocess.run([sys.executable, "-m", "pretrain.train", "tiny", 'train.residual_stream="bf32"',
                          "--run-dir", str(tmp_path / "bad"), "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "train.residual_stream" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def _grads(seed: int):
    from pretrain.model import Transformer

    torch.manual_seed(seed)
    model = Transformer(toy_cfg(*LEVERS).model)
    ids = torch.randint(0, 64, (2, 16))
    model(ids, targets=ids).loss.backward()
    return list(model.parameters())


@pytest.mark.parametrize("max_norm", [0.01, float("inf")])
def test_compiled_clipping_matches_clip_grad_norm(max_norm):
    ours, ref = _grads(0), _grads(0)
    calls = []
    clipper = GradClipper(lambda p, m: calls.append(m), compiled=True)
    norm = clipper(ours, max_norm)
    want = torch.nn.utils.clip_grad_norm_(ref, max_norm, foreach=True)
    assert not calls  # the compiled path ran, not the fallback
    assert float(norm) == pytest.approx(float(want), rel=1e-5)
    if max_norm < float("inf"):
        assert float(want) > 2 * max_norm  # clipping really scaled the gradients
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-8)


def test_clipping_falls_back_to_the_plan_where_the_compiled_form_does_not_fit():
    params = _grads(1)
    params[0].grad = None  # a parameter without a gradient this step (an unused MoE expert)
    assert not fits_compiled([p.grad for p in params])
    assert not fits_compiled([params[1].grad, params[2].grad.double()])
    clipper = GradClipper(lambda p, m: torch.nn.utils.clip_grad_norm_(p, m), compiled=True)
    ref = _grads(1)
    ref[0].grad = None
    norm = clipper(params, 0.05)
    assert float(norm) == pytest.approx(float(torch.nn.utils.clip_grad_norm_(ref, 0.05)), rel=1e-6)
