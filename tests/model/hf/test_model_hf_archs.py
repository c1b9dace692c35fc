"""Continued pre-training from the open models people use: for each architecture a small random
transformers model -> import -> the same logits (2 x 200 tokens, past any sliding window) -> export ->
transformers loads it with no custom code -> the same logits, and the weights come back bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from pretrain.cli import app
from pretrain.model.hf import export_hf, import_hf
from pretrain.model.io import load_model

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

VOCAB, T = 128, 200
BASE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, tie_word_embeddings=False)
WINDOW = 16  # far below T, so most positions are past the window

CASES = {
    "qwen3-head-dim": ("Qwen3Config", dict(head_dim=16, use_sliding_window=True, sliding_window=WINDOW,
                                           max_window_layers=1, attention_bias=True)),
    "qwen2-qkv-bias": ("Qwen2Config", dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1)),
    "llama-bias": ("LlamaConfig", dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=True)),
    "mistral-window": ("MistralConfig", dict(sliding_window=WINDOW, head_dim=16)),
    "olmo2": ("Olmo2Config", {}),
    "gemma3": ("Gemma3TextConfig", dict(num_hidden_layers=3, head_dim=16, sliding_window=WINDOW,
                                        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                        query_pre_attn_scalar=24, final_logit_softcapping=30.0,
                                        # transformers' Gemma 3 ignores attention soft-capping; so do we
                                        attn_logit_softcapping=50.0, tie_word_embeddings=True,
                                        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0,
                                                                            "rope_theta": 1e6},
                                                         "sliding_attention": {"rope_type": "default",
                                                                               "rope_theta": 1e4}})),
    "smollm3-nope": ("SmolLM3Config", dict(num_hidden_layers=4, no_rope_layer_interval=4)),
    "phi3-fused": ("Phi3Config", dict(sliding_window=WINDOW)),
    "qwen3-moe": ("Qwen3MoeConfig", dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                                         norm_topk_prob=True)),
}


def _stock(tmp_path, case, **save_kw):
    """A transformers model with random weights (all perturbed, so norms and biases matter), saved."""
    cls_name, kw = CASES[case]
    cfg = getattr(transformers, cls_name)(**(BASE | kw))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path / "stock", **save_kw)
    return model


def _ids():
    return torch.randint(3, VOCAB, (2, T), generator=torch.Generator().manual_seed(1))


def _logits(model, x):
    with torch.no_grad():
        return model(x).logits


@pytest.mark.parametrize("case", list(CASES))
def test_import_export_round_trip_matches_transformers(tmp_path, case):
    stock = _stock(tmp_path, case)
    x = _ids()
    theirs = _logits(stock, x)
    ours = import_hf(tmp_path / "stock", tmp_path / "ckpt")
    assert load_model(tmp_path / "ckpt").cfg == ours.cfg
    torch.testing.assert_close(_logits(ours, x), theirs, rtol=0, atol=1e-4)
    export_hf(tmp_path / "ckpt", tmp_path / "back")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back", dtype=torch.float32).eval()
    assert type(back).__name__ == type(stock).__name__
    torch.testing.assert_close(_logits(back, x), theirs, rtol=0, atol=1e-4)
    original, returned = stock.state_dict(), back.state_dict()
    assert set(original) == set(returned)
    for key, tensor in original.items():
        assert torch.equal(tensor, returned[key]), key


def test_features_are_config_fields_our_generation_honours(tmp_path):
    """Gemma 3's windows, local RoPE and soft-caps live in the config: cached generation past the window
    equals recomputation."""
    from pretrain.model.generate import generate

    _stock(tmp_path, "gemma3")
    model = import_hf(tmp_path / "stock")
    cfg = model.cfg
    assert (cfg.window_pattern, cfg.sliding_window, cfg.rope_theta_local, cfg.norm_placement) == \
        ("SSL", WINDOW, 1e4, "sandwich")
    prompt = _ids()[:, :5]
    assert torch.equal(generate(model, prompt, 30, greedy=True), generate(model, prompt, 30, greedy=True,
                                                                          use_cache=False))


def test_cli_import_reads_the_index_not_a_consolidated_file(tmp_path):
    """Mistral's repositories ship consolidated.safetensors (another layout) beside the sharded index."""
    from safetensors.torch import save_file

    stock = _stock(tmp_path, "mistral-window", max_shard_size="20KB")
    assert (tmp_path / "stock" / "model.safetensors.index.json").is_file()
    save_file({"layers.0.attention.wq.weight": torch.zeros(3)}, str(tmp_path / "stock" / "consolidated.safetensors"))
    result = CliRunner().invoke(app, ["import", "hf", str(tmp_path / "stock"), "--out", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    torch.testing.assert_close(_logits(load_model(tmp_path / "ckpt"), _ids()), _logits(stock, _ids()),
                               rtol=0, atol=1e-4)


def test_qwen3_moe_saved_by_transformers_reads_either_expert_key(tmp_path):
    _stock(tmp_path, "qwen3-moe")
    saved = json.loads((tmp_path / "stock" / "config.json").read_text())
    key = "num_local_experts" if "num_local_experts" in saved else "num_experts"
    assert import_hf(tmp_path / "stock").cfg.moe.n_experts == 4
    saved["num_local_experts" if key == "num_experts" else "num_experts"] = saved.pop(key)
    (tmp_path / "stock" / "config.json").write_text(json.dumps(saved))
    assert import_hf(tmp_path / "stock").cfg.moe.n_experts == 4
    saved.pop("num_experts", None), saved.pop("num_local_experts", None)
    (tmp_path / "stock" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="num_experts = None"):
        import_hf(tmp_path / "stock")


def test_routing_bias_is_exported_only_when_our_forward_uses_it(tmp_path):
    """balance = aux_loss ignores the bias in our forward; exporting it made transformers route otherwise."""
    from model_helpers import tiny_config

    from pretrain.model import Transformer
    from pretrain.model.config import MoEConfig

    model = Transformer(tiny_config(init_std=0.2, moe=MoEConfig(n_experts=4, top_k=2, balance="aux_loss"))).eval()
    for moe in model.moe_layers():
        moe.router_bias.uniform_(-1.0, 1.0)  # left over from an earlier aux_free stage, say
    export_hf(model, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    x = torch.randint(0, 96, (2, 24))
    torch.testing.assert_close(_logits(model, x), _logits(hf, x), rtol=0, atol=1e-4)


@pytest.mark.parametrize("overrides, message", [
    ({"hf_architecture": "llama", "attn_softcap": 50.0}, "model.attn_softcap': 50.0 cannot be exported as llama"),
    ({"hf_architecture": "mistral", "sliding_window": 8, "window_pattern": "SL"},
     "model.window_pattern': 'SL' cannot be exported as mistral"),
    ({"hf_architecture": "gpt2"}, "model.hf_architecture': 'gpt2' is not one of"),
    ({"hf_architecture": "llama", "norm_placement": "post"},
     "model.norm_placement': 'post' cannot be exported as llama"),
])
def test_inexpressible_export_is_one_line_naming_the_field(tmp_path, overrides, message):
    from model_helpers import tiny_config

    from pretrain.model import Transformer

    with pytest.raises(ValueError, match=message) as err:
        export_hf(Transformer(tiny_config(**overrides)), tmp_path)
    assert "\n" not in str(err.value)


def test_cli_refusals_are_one_line_naming_the_key(tmp_path):
    _stock(tmp_path, "qwen2-qkv-bias")
    path = tmp_path / "stock" / "config.json"
    saved = json.loads(path.read_text())
    for key, value, message in (("hidden_size", None, "'hidden_size' is missing"),
                                ("model_type", "bert", "model_type = 'bert' is not supported"),
                                ("layer_types", ["chunked_attention"] * 2, "layer_types = ['chunked_attention']")):
        broken = dict(saved)
        if value is None:
            broken.pop(key)
        else:
            broken[key] = value
        path.write_text(json.dumps(broken))
        result = CliRunner().invoke(app, ["import", "hf", str(tmp_path / "stock"), "--out", str(tmp_path / "c")])
        assert result.exit_code != 0 and isinstance(result.exception, ValueError)  # the CLI prints these as one line
        assert message in str(result.exception) and "\n" not in str(result.exception)


def test_gemma3_multimodal_checkpoint_imports_its_language_model(tmp_path):
    """Gemma 3 4B and up ship as Gemma3ForConditionalGeneration: import takes the decoder."""
    # Released Gemma 3 has no final soft-cap, and the multimodal class would not apply one.
    text = BASE | CASES["gemma3"][1] | {"final_logit_softcapping": None}
    vision = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    torch.manual_seed(0)
    stock = transformers.Gemma3ForConditionalGeneration(
        transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)).eval()
    with torch.no_grad():
        for p in stock.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    stock.save_pretrained(tmp_path / "stock")
    x = _ids()
    ours = import_hf(tmp_path / "stock", tmp_path / "ckpt")
    torch.testing.assert_close(_logits(ours, x), _logits(stock, x), rtol=0, atol=1e-4)
    export_hf(tmp_path / "ckpt", tmp_path / "back")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back", dtype=torch.float32).eval()
    assert type(back).__name__ == "Gemma3ForCausalLM"
    torch.testing.assert_close(_logits(back, x), _logits(stock, x), rtol=0, atol=1e-4)


def test_transformers_4_style_gemma3_config_without_layer_types(tmp_path):
    """Hub configs written by transformers 4 (google/gemma-3-1b-pt) have no layer_types or rope_parameters:
    sliding_window_pattern, rope_theta, rope_local_base_freq and rope_scaling say the same."""
    stock = _stock(tmp_path, "gemma3")
    path = tmp_path / "stock" / "config.json"
    cfg = json.loads(path.read_text())
    for key in ("layer_types", "rope_parameters"):
        cfg.pop(key)
    cfg |= {"sliding_window_pattern": 3, "rope_theta": 1e6, "rope_local_base_freq": 1e4,
            "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    path.write_text(json.dumps(cfg))
    ours = import_hf(tmp_path / "stock")
    assert ours.cfg.window_pattern == "SSL"
    torch.testing.assert_close(_logits(ours, _ids()), _logits(stock, _ids()), rtol=0, atol=1e-4)
