"""The smear gate and the per-layer residual / embedding scalars (model.smear_gate, model.x0_mix): what
each computes, that each starts as a no-op or nanochat's init, and every path (KV cache, document masks,
checkpoints, the Hugging Face export) handles them."""

from __future__ import annotations

import json

import pytest
import torch
from model_helpers import decode_with_cache, randomise, tiny_config

from pretrain.model import Transformer
from pretrain.model.hf import export_hf
from pretrain.model.io import load_model, save_model
from pretrain.model.layers import SmearGate


def test_smear_gate_adds_the_gated_previous_token_within_a_document():
    torch.manual_seed(0)
    g = SmearGate(8)
    x = torch.randn(2, 5, 8)
    assert torch.equal(g(x), x)  # lam = 0 at construction: a closed gate
    with torch.no_grad():
        g.lam.fill_(0.5)
        g.weight.normal_()
    out = g(x)
    gate = 0.5 * torch.sigmoid(x[..., :8] @ g.weight)[..., None]
    torch.testing.assert_close(out[:, 1:], x[:, 1:] + gate[:, 1:] * x[:, :-1])
    torch.testing.assert_close(out[:, 0], x[:, 0])  # nothing before the first token
    docs = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]])
    masked = g(x, doc_ids=docs)
    torch.testing.assert_close(masked[0, 2], x[0, 2])  # a new document does not see the last one
    torch.testing.assert_close(masked[0, 3], out[0, 3])
    torch.testing.assert_close(masked[1], out[1])


def test_the_model_starts_unchanged_and_learns_the_scalars_at_nanochats_init():
    base = Transformer(tiny_config(n_layers=3))
    smear = Transformer(tiny_config(n_layers=3, smear_gate=True))
    smear.load_state_dict(base.state_dict(), strict=False)
    x = torch.randint(0, 96, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(smear(x).logits, base(x).logits)  # closed gate: the same model
    mixed = Transformer(tiny_config(n_layers=3, x0_mix=True))
    torch.testing.assert_close(mixed.resid_scale.detach(), torch.tensor([1.15, 1.10, 1.05]))
    torch.testing.assert_close(mixed.x0_scale.detach(), torch.tensor([0.20, 0.125, 0.05]))
    with torch.no_grad():  # a = 1, b = 0 is the plain residual stream
        mixed.resid_scale.fill_(1.0)
        mixed.x0_scale.zero_()
    mixed.load_state_dict({**base.state_dict(), "resid_scale": mixed.resid_scale, "x0_scale": mixed.x0_scale})
    with torch.no_grad():
        torch.testing.assert_close(mixed(x).logits, base(x).logits)
    out = mixed(x, x)
    out.loss.backward()
    assert mixed.x0_scale.grad.abs().sum() > 0 and mixed.resid_scale.grad.abs().sum() > 0
    for m in (smear, mixed):
        assert m.num_params() == m.cfg.num_params()


def test_kv_cache_decoding_equals_the_full_forward_and_checkpoints_round_trip(tmp_path):
    model = randomise(Transformer(tiny_config(smear_gate=True, x0_mix=True, max_seq_len=64)))
    x = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        full = model(x).logits
        decoded, cache = decode_with_cache(model, x, 5)
        torch.testing.assert_close(decoded, full, rtol=1e-5, atol=1e-5)
        cache.truncate(8)  # a rejected speculative suffix: the previous token is read from the kept ids
        again = model(x[:, 8:9], cache=cache).logits
        torch.testing.assert_close(again, full[:, 8:9], rtol=1e-5, atol=1e-5)
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.cfg == model.cfg
    torch.testing.assert_close(loaded(x).logits, full)


@pytest.mark.parametrize("field", ["smear_gate", "x0_mix"])
def test_export_writes_own_code_for_them(tmp_path, field):
    """No stock architecture has them: export writes our modeling code; naming llama refuses in one line."""
    with pytest.raises(ValueError, match=f"model.{field}': True cannot be exported") as err:
        export_hf(Transformer(tiny_config(hf_architecture="llama", **{field: True})), tmp_path / "llama")
    assert "\n" not in str(err.value)
    export_hf(Transformer(tiny_config(**{field: True})), tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "pretrain"
