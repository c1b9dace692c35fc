"""Hugging Face interop: export to stock ``transformers`` architectures, import Llama-family checkpoints.

Export picks the closest stock architecture, so ``AutoModelForCausalLM`` loads the result without
``trust_remote_code``:

- dense, no QK-norm -> ``LlamaForCausalLM`` (the lingua franca of serving stacks: vLLM, llama.cpp, MLX...)
- dense with QK-norm -> ``Qwen3ForCausalLM`` (Llama plus per-head q/k RMSNorm, the same as ours)
- MoE, sigmoid routing -> ``Glm4MoeForCausalLM`` (GLM-4.5): GQA attention, optional per-head QK-norm,
  DeepSeek-V3 routing (sigmoid affinities, a score-correction bias used only for choosing experts,
  renormalised gates), shared experts and leading dense layers.
- MoE, softmax routing -> ``MixtralForCausalLM`` (no QK-norm, no dense layers) or
  ``Qwen3MoeForCausalLM`` (QK-norm, optional leading dense layers). Neither has shared experts or a
  routing bias, so models with shared experts or non-zero auxiliary-loss-free biases are refused.
  The MTP modules are never exported (a training aid; ``generate --speculative`` uses them natively).

RoPE scaling is written both as ``rope_scaling`` + ``rope_theta`` (transformers 4.x, vLLM, llama.cpp)
and as ``rope_parameters`` (transformers 5.x). Weights are written as safetensors; import reads only
safetensors (never pickled ``pytorch_model.bin``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from pretrain.model.config import ModelConfig, MoEConfig, RopeScalingConfig
from pretrain.model.io import find_tokenizer, load_model, resolve_checkpoint, save_model
from pretrain.model.transformer import Transformer

SPECIAL_TOKENS = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ------------------------------------------------------------------------------------------ names
def _layer_names(i: int, qk_norm: bool) -> dict[str, str]:
    ours, hf = f"layers.{i}.", f"model.layers.{i}."
    names = {
        "attn_norm.weight": "input_layernorm.weight",
        "attn.wq.weight": "self_attn.q_proj.weight",
        "attn.wk.weight": "self_attn.k_proj.weight",
        "attn.wv.weight": "self_attn.v_proj.weight",
        "attn.wo.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
    }
    if qk_norm:
        names |= {"attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight"}
    return {ours + k: hf + v for k, v in names.items()}


def _mlp_names(ours: str, hf: str) -> dict[str, str]:
    return {f"{ours}.{a}.weight": f"{hf}.{b}_proj.weight" for a, b in (("gate", "gate"), ("up", "up"), ("down", "down"))}


def moe_architecture(cfg: ModelConfig) -> str | None:
    """The stock MoE architecture a config exports to (None for dense); errors say what is not expressible."""
    m = cfg.moe
    if not m.n_experts:
        return None
    if m.router_score == "sigmoid":
        return "glm4_moe"
    if m.n_shared:
        raise ValueError("config field 'model.moe.n_shared': softmax routing with shared experts has no stock "
                         "transformers architecture (use router_score = 'sigmoid' -> Glm4Moe)")
    if cfg.qk_norm:
        return "qwen3_moe"
    if m.first_dense_layers:
        raise ValueError("config field 'model.moe.first_dense_layers': Mixtral has no dense layers (use qk_norm "
                         "-> Qwen3-MoE, or sigmoid routing -> Glm4Moe)")
    return "mixtral"


def name_map(cfg: ModelConfig, legacy_mixtral: bool = True) -> dict[str, str]:
    """Our state-dict key -> the Hugging Face key, for every exported tensor. Mixtral is written in its
    original hub layout (block_sparse_moe, w1/w2/w3) unless legacy_mixtral is False."""
    arch = moe_architecture(cfg)
    names = {"tok_emb.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    if not cfg.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    for i in range(cfg.n_layers):
        names |= _layer_names(i, cfg.qk_norm)
        ours, hf = f"layers.{i}.ffn", f"model.layers.{i}.mlp"
        if not cfg.is_moe_layer(i):
            names |= _mlp_names(ours, hf)
            continue
        if arch == "mixtral" and legacy_mixtral:
            hf = f"model.layers.{i}.block_sparse_moe"
            names[f"{ours}.router.weight"] = f"{hf}.gate.weight"
            for e in range(cfg.moe.n_experts):
                for a, b in (("gate", "w1"), ("down", "w2"), ("up", "w3")):
                    names[f"{ours}.experts.{e}.{a}.weight"] = f"{hf}.experts.{e}.{b}.weight"
            continue
        names[f"{ours}.router.weight"] = f"{hf}.gate.weight"
        if arch == "glm4_moe":
            names[f"{ours}.router_bias"] = f"{hf}.gate.e_score_correction_bias"
        for e in range(cfg.moe.n_experts):
            names |= _mlp_names(f"{ours}.experts.{e}", f"{hf}.experts.{e}")
        if cfg.moe.n_shared:
            names |= _mlp_names(f"{ours}.shared", f"{hf}.shared_experts")
    return names


# ------------------------------------------------------------------------------------------ config
def _rope_dict(cfg: ModelConfig) -> dict | None:
    sc = cfg.rope_scaling
    if sc.type == "none":
        return None
    d: dict = {"rope_type": sc.type, "type": sc.type, "factor": sc.factor}
    if sc.type in ("yarn", "llama3", "linear"):
        d["original_max_position_embeddings"] = cfg.rope_original_max_position
    if sc.type == "yarn":
        d |= {"beta_fast": sc.beta_fast, "beta_slow": sc.beta_slow}
        if sc.attn_factor:
            d["attention_factor"] = sc.attn_factor
    if sc.type == "llama3":
        d |= {"low_freq_factor": sc.low_freq_factor, "high_freq_factor": sc.high_freq_factor}
    return d


def hf_config(cfg: ModelConfig, token_ids: dict[str, int | None], dtype: str = "float32") -> dict:
    """The ``config.json`` of the stock architecture closest to ``cfg``."""
    rope = _rope_dict(cfg)
    # transformers' dynamic NTK treats max_position_embeddings as the original context.
    max_pos = cfg.rope_original_max_position if cfg.rope_scaling.type == "dynamic" else cfg.max_seq_len
    out = {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": max_pos,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": rope,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta}
        if rope is None
        else {k: v for k, v in rope.items() if k != "type"} | {"rope_theta": cfg.rope_theta},
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": cfg.init_std,
        "use_cache": True,
        "torch_dtype": dtype,
        "dtype": dtype,
        "bos_token_id": token_ids.get("bos_token"),
        "eos_token_id": token_ids.get("eos_token"),
        "pad_token_id": token_ids.get("pad_token"),
    }
    arch, m = moe_architecture(cfg), cfg.moe
    if arch == "glm4_moe":
        # Glm4Moe sums n_shared_experts experts as one MLP of moe_intermediate_size * n_shared_experts.
        out |= {
            "architectures": ["Glm4MoeForCausalLM"],
            "model_type": "glm4_moe",
            "moe_intermediate_size": cfg.expert_hidden_dim,
            "n_routed_experts": m.n_experts,
            "num_experts_per_tok": m.top_k,
            "n_shared_experts": m.n_shared,
            "first_k_dense_replace": m.first_dense_layers,
            "n_group": 1,
            "topk_group": 1,
            "norm_topk_prob": True,
            "routed_scaling_factor": 1.0,
            "use_qk_norm": cfg.qk_norm,
            "partial_rotary_factor": 1.0,
            "num_nextn_predict_layers": 0,
        }
        out["rope_parameters"]["partial_rotary_factor"] = 1.0
    elif arch == "qwen3_moe":
        out |= {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": m.n_experts,
                "num_experts_per_tok": m.top_k, "moe_intermediate_size": cfg.expert_hidden_dim,
                "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": list(range(m.first_dense_layers)),
                "use_sliding_window": False, "sliding_window": None, "output_router_logits": False}
    elif arch == "mixtral":
        out |= {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": m.n_experts,
                "num_experts_per_tok": m.top_k, "intermediate_size": cfg.expert_hidden_dim, "sliding_window": None,
                "router_jitter_noise": 0.0, "output_router_logits": False}
    elif cfg.qk_norm:
        out |= {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "use_sliding_window": False,
                "sliding_window": None, "max_window_layers": cfg.n_layers}
    else:
        out |= {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "mlp_bias": False,
                "pretraining_tp": 1}
    return out


# ------------------------------------------------------------------------------------------ tokenizer
def _export_tokenizer(tokenizer_json: Path, out: Path, max_len: int) -> dict[str, int | None]:
    """Copy tokenizer.json (with a post-processor that prepends <|bos|>, as our loader does in training)
    and write tokenizer_config.json / special_tokens_map.json so AutoTokenizer loads it."""
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(tokenizer_json))
    ids = {name: tok.token_to_id(text) for name, text in SPECIAL_TOKENS.items()}
    present = {name: SPECIAL_TOKENS[name] for name, i in ids.items() if i is not None}
    if ids["bos_token"] is not None and tok.encode("a").ids[:1] != [ids["bos_token"]]:
        bos = SPECIAL_TOKENS["bos_token"]
        template = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, ids["bos_token"])]
        )
        tok.post_processor = template if tok.post_processor is None else processors.Sequence(
            [tok.post_processor, template]
        )
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_len,
              "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False} | present
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(present, indent=2) + "\n", encoding="utf-8")
    return ids


def export_hf(source: str | Path | Transformer, out_dir: str | Path, tokenizer: str | Path | None = None,
              dtype: str = "float32") -> Path:
    """Write ``config.json``, ``generation_config.json``, ``model.safetensors`` and tokenizer files.

    ``source`` is a model, a checkpoint directory or a run directory; the tokenizer defaults to the
    checkpoint's ``tokenizer.json`` (or its run's ``tokenizer/tokenizer.json``; without one, no tokenizer
    files are written)."""
    from safetensors.torch import save_file

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)} (got {dtype!r})")
    if isinstance(source, Transformer):
        model = source
    else:
        ckpt = resolve_checkpoint(source)
        model = load_model(ckpt)
        tokenizer = tokenizer or find_tokenizer(ckpt)
    if tokenizer is not None and not Path(tokenizer).is_file():
        raise FileNotFoundError(f"tokenizer file not found: {tokenizer}")
    cfg = model.cfg
    if cfg.sliding_window:
        raise ValueError(f"config field 'model.sliding_window': {cfg.sliding_window} cannot be exported yet")
    arch = moe_architecture(cfg)  # refuses inexpressible MoE configs before anything is written
    if arch in ("mixtral", "qwen3_moe") and any(bool(m.router_bias.any()) for m in model.moe_layers()):
        raise ValueError(f"{arch} has no routing bias: auxiliary-loss-free biases change which experts are "
                         "chosen, so this model cannot be exported exactly (use sigmoid routing -> Glm4Moe, or "
                         "balance = 'aux_loss')")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    token_ids = _export_tokenizer(Path(tokenizer), out, cfg.max_seq_len) if tokenizer is not None else {}
    config = hf_config(cfg, token_ids, dtype)
    state = model.state_dict()
    tensors = {}
    for ours, hf in name_map(cfg).items():
        # transformers keeps the routing bias in fp32 whatever the weight dtype.
        target = torch.float32 if hf.endswith("e_score_correction_bias") else _DTYPES[dtype]
        tensors[hf] = state[ours].detach().to(target).contiguous().cpu()
    if arch == "glm4_moe" and not cfg.moe.n_shared:
        # Glm4Moe always builds a shared MLP; zero-width weights make it contribute exactly nothing.
        for i in range(cfg.n_layers):
            if cfg.is_moe_layer(i):
                p = f"model.layers.{i}.mlp.shared_experts."
                empty = torch.zeros(0, cfg.dim, dtype=_DTYPES[dtype])
                tensors |= {p + "gate_proj.weight": empty, p + "up_proj.weight": empty,
                            p + "down_proj.weight": empty.t().contiguous()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    gen = {k.replace("_token", "_token_id"): v for k, v in token_ids.items() if v is not None}
    (out / "generation_config.json").write_text(json.dumps(gen | {"do_sample": False}, indent=2) + "\n",
                                               encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------ import
_IMPORTABLE = ("llama", "mistral", "qwen3", "glm4_moe", "qwen3_moe", "mixtral")


def _rope_from_hf(hf: dict, where: str) -> tuple[float, RopeScalingConfig, int]:
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {k: v for k, v in params.items() if k != "rope_theta"}
    theta = float(hf.get("rope_theta") or params.get("rope_theta") or 10000.0)
    kind = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    if kind == "default":
        return theta, RopeScalingConfig(), 0
    if kind not in ("linear", "dynamic", "yarn", "llama3"):
        raise ValueError(f"{where}: rope_type {kind!r} is not supported (linear, dynamic, yarn, llama3)")
    rs = RopeScalingConfig(type=kind, factor=float(scaling["factor"]))
    orig = int(scaling.get("original_max_position_embeddings") or hf["max_position_embeddings"])
    if kind == "dynamic":
        orig = int(hf["max_position_embeddings"])
    rs.original_max_position = orig
    if kind == "yarn":
        rs.beta_fast = float(scaling.get("beta_fast") or 32.0)
        rs.beta_slow = float(scaling.get("beta_slow") or 1.0)
        rs.attn_factor = float(scaling.get("attention_factor") or 0.0)
        if scaling.get("mscale") or scaling.get("truncate") is False:
            raise ValueError(f"{where}: YaRN mscale / truncate=false variants are not supported")
    if kind == "llama3":
        rs.low_freq_factor = float(scaling["low_freq_factor"])
        rs.high_freq_factor = float(scaling["high_freq_factor"])
    return theta, rs, orig


def config_from_hf(hf: dict, where: str = "config.json") -> ModelConfig:
    """Our ModelConfig for a Llama-family ``config.json`` (errors name what is not expressible)."""
    mt = hf.get("model_type")
    if mt not in _IMPORTABLE:
        raise ValueError(f"{where}: model_type {mt!r} is not supported (supported: {', '.join(_IMPORTABLE)})")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{where}: hidden_act {hf.get('hidden_act')!r} is not supported (silu only)")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError(f"{where}: attention/MLP biases are not supported")
    if hf.get("sliding_window") and hf.get("use_sliding_window", mt == "mistral"):
        raise ValueError(f"{where}: sliding-window attention is not supported")
    dim, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    if hf.get("head_dim") and int(hf["head_dim"]) != dim // heads:
        raise ValueError(f"{where}: head_dim {hf['head_dim']} != hidden_size / num_attention_heads ({dim // heads})")
    theta, scaling, orig = _rope_from_hf(hf, where)
    if mt == "glm4_moe" and float(hf.get("partial_rotary_factor", (hf.get("rope_parameters") or {}).get(
            "partial_rotary_factor", 0.5))) != 1.0:
        raise ValueError(f"{where}: partial rotary embeddings are not supported")
    cfg = ModelConfig(
        vocab_size=int(hf["vocab_size"]), dim=dim, n_layers=int(hf["num_hidden_layers"]), n_heads=heads,
        n_kv_heads=int(hf.get("num_key_value_heads") or heads), ffn_hidden=int(hf["intermediate_size"]),
        max_seq_len=int(hf.get("max_position_embeddings", 2048)), rope_theta=theta, rope_scaling=scaling,
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qk_norm=mt in ("qwen3", "qwen3_moe") or bool(hf.get("use_qk_norm", False)),
        init_std=float(hf.get("initializer_range", 0.02)),
    )
    if mt == "glm4_moe":
        if int(hf.get("n_group", 1)) != 1 or float(hf.get("routed_scaling_factor", 1.0)) != 1.0:
            raise ValueError(f"{where}: grouped routing / routed_scaling_factor != 1 are not supported")
        cfg.moe = MoEConfig(n_experts=int(hf["n_routed_experts"]), top_k=int(hf["num_experts_per_tok"]),
                            n_shared=int(hf.get("n_shared_experts", 0)), expert_hidden=int(hf["moe_intermediate_size"]),
                            first_dense_layers=int(hf.get("first_k_dense_replace", 0)), router_score="sigmoid")
    if mt == "qwen3_moe":
        sparse_step, dense = int(hf.get("decoder_sparse_step", 1)), sorted(hf.get("mlp_only_layers") or [])
        if sparse_step != 1 or dense != list(range(len(dense))) or not hf.get("norm_topk_prob", False):
            raise ValueError(f"{where}: only leading dense layers, decoder_sparse_step 1 and norm_topk_prob are "
                             "supported")
        cfg.moe = MoEConfig(n_experts=int(hf["num_experts"]), top_k=int(hf["num_experts_per_tok"]),
                            expert_hidden=int(hf["moe_intermediate_size"]), first_dense_layers=len(dense),
                            router_score="softmax", balance="aux_loss")
    if mt == "mixtral":
        cfg.moe = MoEConfig(n_experts=int(hf["num_local_experts"]), top_k=int(hf["num_experts_per_tok"]),
                            expert_hidden=int(hf["intermediate_size"]), router_score="softmax", balance="aux_loss")
    if scaling.type == "dynamic":
        cfg.max_seq_len = orig
    return cfg


def _read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        if any(directory.glob("*.bin")):
            raise ValueError(f"{directory}: only *.bin weights found; pickled checkpoints are refused, convert "
                             "them to safetensors first")
        raise FileNotFoundError(f"no *.safetensors weights in {directory}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def _unfuse_experts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring MoE expert tensors to one layout (mlp.experts.{e}.{gate,up,down}_proj): transformers 5 saves
    them fused ([E, 2I, D] gate_up_proj, [E, D, I] down_proj); Mixtral's hub files say block_sparse_moe and
    w1 (gate) / w2 (down) / w3 (up)."""
    for key in [k for k in state if ".block_sparse_moe." in k]:
        new = key.replace(".block_sparse_moe.", ".mlp.")
        for old, repl in ((".w1.", ".gate_proj."), (".w2.", ".down_proj."), (".w3.", ".up_proj.")):
            new = new.replace(old, repl)
        state[new] = state.pop(key)
    for key in [k for k in state if k.endswith("mlp.experts.gate_up_proj")]:
        prefix = key[: -len("gate_up_proj")]
        gate_up, down = state.pop(key), state.pop(prefix + "down_proj")
        hidden = gate_up.shape[1] // 2
        for e in range(gate_up.shape[0]):
            state[f"{prefix}{e}.gate_proj.weight"] = gate_up[e, :hidden].contiguous()
            state[f"{prefix}{e}.up_proj.weight"] = gate_up[e, hidden:].contiguous()
            state[f"{prefix}{e}.down_proj.weight"] = down[e].contiguous()
    return state


def import_hf(directory: str | Path, out: str | Path | None = None) -> Transformer:
    """Load a Hugging Face Llama-family directory as a Transformer (float32); with ``out``, save it there as
    a checkpoint (model.safetensors, model_config.json and the tokenizer.json if there is one)."""
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}")
    hf = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg = config_from_hf(hf, str(cfg_path))
    state = _unfuse_experts(_read_safetensors(directory))
    model = Transformer(cfg)
    ours = model.state_dict()
    names = name_map(cfg, legacy_mixtral=False)
    if cfg.tie_embeddings and "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise ValueError(f"{directory}: tie_word_embeddings is true but lm_head.weight differs from the embedding")
    loaded = {}
    for our_key, hf_key in names.items():
        if hf_key not in state:
            if hf_key.endswith("e_score_correction_bias"):
                loaded[our_key] = torch.zeros_like(ours[our_key])
                continue
            raise ValueError(f"{directory}: tensor {hf_key} missing from the safetensors files")
        t = state.pop(hf_key)
        if t.shape != ours[our_key].shape:
            raise ValueError(f"{directory}: {hf_key} has shape {tuple(t.shape)}, expected {tuple(ours[our_key].shape)}")
        loaded[our_key] = t.to(torch.float32)
    state.pop("lm_head.weight", None)
    leftover = [k for k in state if "rotary_emb" not in k and not (k.endswith("_proj.weight") and state[k].numel() == 0)]
    if leftover:
        raise ValueError(f"{directory}: tensors this architecture does not use: {leftover[:5]}")
    if cfg.tie_embeddings:
        loaded["lm_head.weight"] = loaded["tok_emb.weight"]
    for key in ours:
        if key.endswith("router_bias") and key not in loaded:  # architectures without a routing bias
            loaded[key] = torch.zeros_like(ours[key])
    model.load_state_dict(loaded, strict=True)
    if out is not None:
        save_model(model, out)
        if (directory / "tokenizer.json").is_file():
            shutil.copyfile(directory / "tokenizer.json", Path(out) / "tokenizer.json")
    return model
