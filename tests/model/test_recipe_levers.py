"""The nanochat / modded-nanogpt levers as model config fields: each does what it says, and only where
configured; the KV cache, checkpoints and the Hugging Face export handle them (or refuse by name)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from model_helpers import decode_with_cache, randomise, tiny_config

from pretrain.model import Transformer
from pretrain.model.config import MoEConfig
from pretrain.model.hf import export_hf
from pretrain.model.io import load_model, save_model
from pretrain.model.layers import ACTIVATIONS, PlainMLP

RECIPE = {"value_embeddings": "-V", "activation": "relu2", "mlp_gated": False, "zero_init_proj": True,
          "logit_softcap": 15.0, "qk_norm": True, "tie_embeddings": False}


def test_logit_softcap_bounds_the_logits_and_is_tanh():
    torch.manual_seed(0)
    plain = Transformer(tiny_config(init_std=2.0)).eval()
    capped = Transformer(tiny_config(init_std=2.0, logit_softcap=5.0)).eval()
    capped.load_state_dict(plain.state_dict())
    x = torch.randint(0, 96, (2, 16))
    with torch.no_grad():
        raw, out = plain(x).logits, capped(x).logits
    assert raw.abs().max() > 5.0  # the cap has something to do
    assert out.abs().max() <= 5.0
    torch.testing.assert_close(out, 5.0 * torch.tanh(raw / 5.0))


def test_relu2_is_relu_squared_and_the_plain_mlp_has_no_gate():
    x = torch.randn(4, 7)
    torch.testing.assert_close(ACTIVATIONS["relu2"](x), F.relu(x) ** 2)
    mlp = PlainMLP(7, 28, activation="relu2")
    torch.testing.assert_close(mlp(x), mlp.down(F.relu(mlp.up(x)) ** 2))
    cfg = tiny_config(activation="relu2", mlp_gated=False)
    block_ffn = Transformer(cfg).layers[0].ffn
    assert isinstance(block_ffn, PlainMLP) and block_ffn.up.out_features == 4 * cfg.dim
    assert cfg.num_params() == Transformer(cfg).num_params()
    moe = tiny_config(activation="relu2", mlp_gated=False, moe=MoEConfig(n_experts=4, top_k=2, n_shared=1))
    experts = Transformer(moe).layers[0].ffn
    assert isinstance(experts.experts[0], PlainMLP) and isinstance(experts.shared, PlainMLP)
    assert moe.num_params() == Transformer(moe).num_params()


def test_zero_init_projections_make_every_block_the_identity():
    model = Transformer(tiny_config(zero_init_proj=True, n_layers=3)).eval()
    x = torch.randn(2, 10, 32)
    rope = model._rope_tables(10, 0)
    for layer in model.layers:
        assert torch.count_nonzero(layer.attn.wo.weight) == 0 and torch.count_nonzero(layer.ffn.down.weight) == 0
        out, _ = layer(x, *rope[layer.attn.rope], None)
        torch.testing.assert_close(out, x, rtol=0, atol=0)
    # ... and the other weights are not zero, so gradients reach the projections on the first step.
    ids = torch.randint(0, 96, (2, 10))
    model.train()
    model(ids, targets=ids).loss.backward()
    assert all(layer.attn.wo.weight.grad.abs().sum() > 0 for layer in model.layers)


def test_value_embeddings_change_the_forward_only_in_their_layers():
    cfg = tiny_config(value_embeddings="-V", n_layers=4)
    assert [cfg.layer_value_embedding(i) for i in range(4)] == [False, True, False, True]
    model = randomise(Transformer(cfg))
    assert model.layers[0].attn.value_embed is None and model.layers[1].attn.value_embed is not None
    base = Transformer(tiny_config(n_layers=4)).eval()
    base.load_state_dict(model.state_dict(), strict=False)  # the same weights, without value embeddings
    outputs = {}

    def capture(tag):
        return lambda module, args, out: outputs.setdefault(tag, []).append(out[0])

    for tag, m in (("base", base), ("ve", model)):
        for layer in m.layers:
            layer.register_forward_hook(capture(tag))
    x = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        base(x), model(x)
    torch.testing.assert_close(outputs["ve"][0], outputs["base"][0], rtol=0, atol=0)  # layer 0: none
    assert not torch.allclose(outputs["ve"][1], outputs["base"][1], atol=1e-4)  # layer 1 mixes its table in
    # The table feeds the values: zeroing it gives back the base model exactly.
    with torch.no_grad():
        for layer in model.layers:
            if layer.attn.value_embed is not None:
                layer.attn.value_embed.weight.zero_()
        torch.testing.assert_close(model(x).logits, base(x).logits)
    with pytest.raises(ValueError, match="model.value_embeddings"):
        model.layers[1].attn(torch.randn(1, 4, 32), None, None, None)


def test_the_recipe_decodes_with_a_kv_cache_and_round_trips_a_checkpoint(tmp_path):
    model = randomise(Transformer(tiny_config(**RECIPE, max_seq_len=64)))
    x = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        full = model(x).logits
        decoded, cache = decode_with_cache(model, x, 5)
    torch.testing.assert_close(decoded, full, rtol=1e-5, atol=1e-5)
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.cfg == model.cfg
    torch.testing.assert_close(loaded(x).logits, full)


@pytest.mark.parametrize("field, value", [("value_embeddings", "-V"), ("mlp_gated", False), ("activation", "relu2")])
def test_export_writes_own_code_for_what_llama_cannot_express(tmp_path, field, value):
    """Exported with our modeling code (tests/model/hf/test_hf_custom_code.py loads it); naming llama refuses."""
    with pytest.raises(ValueError, match=f"model.{field}': {value!r} cannot be exported") as err:
        export_hf(Transformer(tiny_config(hf_architecture="llama", **{field: value})), tmp_path / "llama")
    assert "\n" not in str(err.value)
    export_hf(Transformer(tiny_config(**{field: value})), tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "pretrain"
    assert (tmp_path / "hf" / "modeling_pretrain.py").is_file()


def test_zero_init_projections_export(tmp_path):
    export_hf(Transformer(tiny_config(zero_init_proj=True)), tmp_path / "hf")  # only an initialisation
    assert (tmp_path / "hf" / "config.json").is_file()
