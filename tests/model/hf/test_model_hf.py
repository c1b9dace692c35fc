"""Hugging Face interop: exported models give transformers the same logits; import -> export is exact."""

from __future__ import annotations

import json

import pytest
import torch
from model_helpers import tiny_config

from pretrain.model import Transformer
from pretrain.model.config import MoEConfig, MTPConfig, RopeScalingConfig
from pretrain.model.hf import export_hf, import_hf
from pretrain.model.io import load_model, save_model

transformers = pytest.importorskip("transformers")


def _hf_logits(directory, x):
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(x).logits, model


EXPORT_CASES = {
    "llama-tied": ({}, "LlamaForCausalLM"),
    "llama-untied-mqa": ({"tie_embeddings": False, "n_kv_heads": 1}, "LlamaForCausalLM"),
    "rope-linear": ({"rope_scaling": RopeScalingConfig(type="linear", factor=2.0)}, "LlamaForCausalLM"),
    "rope-dynamic": ({"rope_scaling": RopeScalingConfig(type="dynamic", factor=2.0, original_max_position=16)},
                     "LlamaForCausalLM"),
    "rope-yarn": ({"rope_scaling": RopeScalingConfig(type="yarn", factor=4.0, original_max_position=16)},
                  "LlamaForCausalLM"),
    "rope-llama3": ({"rope_scaling": RopeScalingConfig(type="llama3", factor=8.0, original_max_position=16),
                     "rope_theta": 500000.0}, "LlamaForCausalLM"),
    "qk-norm": ({"qk_norm": True}, "Qwen3ForCausalLM"),
    "head-dim": ({"attn_head_dim": 16}, "LlamaForCausalLM"),
    "window-all": ({"sliding_window": 8, "window_pattern": "S"}, "MistralForCausalLM"),
    "window-sl-qk-norm": ({"sliding_window": 8, "window_pattern": "SL", "qk_norm": True}, "Qwen3ForCausalLM"),
    "window-sl": ({"sliding_window": 8, "window_pattern": "SL"}, "SmolLM3ForCausalLM"),
    "qkv-bias": ({"qkv_bias": True, "sliding_window": 8, "window_pattern": "LS"}, "Qwen2ForCausalLM"),
    "moe-shared": ({"moe": MoEConfig(n_experts=4, top_k=2, n_shared=1, first_dense_layers=1), "qk_norm": True},
                   "Glm4MoeForCausalLM"),
    "moe-plain": ({"moe": MoEConfig(n_experts=4, top_k=1)}, "Glm4MoeForCausalLM"),
    "moe-softmax": ({"moe": MoEConfig(n_experts=4, top_k=2, router_score="softmax", balance="aux_loss")},
                    "MixtralForCausalLM"),
    "moe-softmax-qk-norm": ({"qk_norm": True, "moe": MoEConfig(n_experts=4, top_k=2, router_score="softmax",
                                                               first_dense_layers=1)}, "Qwen3MoeForCausalLM"),
}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # Glm4Moe's empty shared MLP
@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_logits_match_transformers(tmp_path, case):
    overrides, arch = EXPORT_CASES[case]
    model = Transformer(tiny_config(init_std=0.2, **overrides)).eval()
    if model.cfg.moe.router_score == "sigmoid":
        for moe in model.moe_layers():
            moe.router_bias.uniform_(-0.05, 0.05)
    export_hf(model, tmp_path)
    x = torch.randint(0, 96, (2, 40))  # longer than max_seq_len=32: exercises the scalings
    theirs, hf_model = _hf_logits(tmp_path, x)
    assert type(hf_model).__name__ == arch
    with torch.no_grad():
        ours = model(x).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def test_export_from_checkpoint_with_tokenizer_and_mtp(tmp_path, tokenizer_file):
    model = Transformer(tiny_config(vocab_size=300, init_std=0.2, mtp=MTPConfig(depth=1))).eval()
    ckpt = tmp_path / "run" / "checkpoints" / "final"
    save_model(model, ckpt)
    (ckpt / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    names = sorted(p.name for p in out.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json"} <= set(names)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    ids = tok("to be or not")["input_ids"]
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(tokenizer_file))
    assert ids == [ours.token_to_id("<|bos|>")] + ours.encode("to be or not").ids
    x = torch.tensor([ids])
    theirs, hf_model = _hf_logits(out, x)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, theirs, rtol=0, atol=1e-4)
    # The MTP module is not part of the export.
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not any("mtp" in k for k in f.keys())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["bos_token_id"] == ours.token_to_id("<|bos|>")


def test_bf16_export_loads(tmp_path):
    model = Transformer(tiny_config(init_std=0.2)).eval()
    export_hf(model, tmp_path, dtype="bfloat16")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert hf.model.embed_tokens.weight.dtype == torch.bfloat16


def _stock_llama(tmp_path, **kw):
    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   rms_norm_eps=1e-5, **kw)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path / "stock")
    return hf


@pytest.mark.parametrize("rope", [None, {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}])
@pytest.mark.parametrize("tied", [False, True])
def test_import_then_export_round_trip_is_exact(tmp_path, rope, tied):
    kw = {"tie_word_embeddings": tied}
    if rope:
        kw["rope_parameters"] = {"rope_theta": 10000.0, **rope}
    hf = _stock_llama(tmp_path, **kw)
    model = import_hf(tmp_path / "stock", tmp_path / "ckpt")
    assert load_model(tmp_path / "ckpt").cfg == model.cfg
    x = torch.randint(0, 96, (1, 24))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, hf(x).logits, rtol=0, atol=1e-4)
    export_hf(tmp_path / "ckpt", tmp_path / "back")
    from safetensors.torch import load_file

    original, back = load_file(str(tmp_path / "stock" / "model.safetensors")), load_file(str(tmp_path / "back" / "model.safetensors"))
    if tied:
        original.pop("lm_head.weight", None)
    assert set(original) == set(back)
    for key, tensor in original.items():
        assert torch.equal(tensor, back[key]), key
    a = json.loads((tmp_path / "stock" / "config.json").read_text())
    b = json.loads((tmp_path / "back" / "config.json").read_text())
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "vocab_size", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings", "rope_parameters"):
        assert a.get(key) == b.get(key), key


def test_import_refuses_what_it_cannot_represent(tmp_path):
    _stock_llama(tmp_path)
    cfg_path = tmp_path / "stock" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_type"] = "gpt2"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model_type = 'gpt2' is not supported"):
        import_hf(tmp_path / "stock")
    cfg["model_type"], cfg["attention_bias"] = "mistral", True  # Mistral has no attention biases
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="attention_bias = True is not supported for mistral"):
        import_hf(tmp_path / "stock")
    cfg["model_type"], cfg["attention_bias"], cfg["hidden_act"] = "llama", False, "relu"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="hidden_act = 'relu' is not supported"):
        import_hf(tmp_path / "stock")
    cfg["hidden_act"] = "silu"
    cfg_path.write_text(json.dumps(cfg))
    (tmp_path / "stock" / "model.safetensors").rename(tmp_path / "stock" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickled checkpoints are refused"):
        import_hf(tmp_path / "stock")
    with pytest.raises(FileNotFoundError, match="config.json"):
        import_hf(tmp_path / "nowhere")


def test_moe_no_stock_architecture_fits_exports_own_code(tmp_path):
    """Softmax routing with shared experts, or a trained routing bias under softmax routing: no stock
    architecture computes them, so export writes our modeling code; naming mixtral refuses the bias."""
    shared = Transformer(tiny_config(moe=MoEConfig(n_experts=4, top_k=2, router_score="softmax", n_shared=1)))
    export_hf(shared, tmp_path / "shared")
    assert json.loads((tmp_path / "shared" / "config.json").read_text())["model_type"] == "pretrain"
    biased = Transformer(tiny_config(moe=MoEConfig(n_experts=4, top_k=2, router_score="softmax")))
    biased.moe_layers()[0].router_bias[0] = 0.1
    export_hf(biased, tmp_path / "biased")
    assert json.loads((tmp_path / "biased" / "config.json").read_text())["model_type"] == "pretrain"
    biased.cfg.hf_architecture = "mixtral"
    with pytest.raises(ValueError, match="routing bias"):
        export_hf(biased, tmp_path / "mixtral")


@pytest.mark.parametrize("moe", [MoEConfig(n_experts=4, top_k=2, n_shared=1),
                                 MoEConfig(n_experts=4, top_k=2, router_score="softmax", balance="aux_loss")],
                         ids=["glm4_moe", "mixtral"])
def test_moe_export_save_pretrained_import_round_trip(tmp_path, moe):
    """Ours -> HF files -> transformers (re-saved in its own layout) -> ours: the same tensors."""
    model = Transformer(tiny_config(init_std=0.2, moe=moe)).eval()
    if moe.router_score == "sigmoid":
        for layer in model.moe_layers():
            layer.router_bias.uniform_(-0.05, 0.05)
    export_hf(model, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    hf.save_pretrained(tmp_path / "resaved")
    back = import_hf(tmp_path / "resaved")
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[key]), key
