"""``export_hf`` and ``import_hf``: whole checkpoints to and from Hugging Face directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from pretrain.model.hf import archs, custom
from pretrain.model.hf.card import write_card
from pretrain.model.hf.families.base import families, unwrapping
from pretrain.model.hf.hfconfig import config_from_hf, hf_config
from pretrain.model.hf.source import checked_checkpoint
from pretrain.model.hf.tokenizer import copy_hf_tokenizer, export_tokenizer
from pretrain.model.hf.weights import language_model_only, name_map, read_safetensors, unfuse_experts
from pretrain.model.io import find_tokenizer, load_model, save_model
from pretrain.model.transformer import Transformer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def export_hf(source: str | Path | Transformer, out_dir: str | Path, tokenizer: str | Path | None = None,
              dtype: str = "float32") -> Path:
    """Write ``config.json``, ``generation_config.json``, ``model.safetensors`` and tokenizer files, plus
    our modeling code where no stock architecture expresses the model (see :mod:`.custom`).

    ``source`` is a model, a checkpoint directory or a run directory (whose checkpoint must be complete
    and pass its checksums); the tokenizer defaults to the checkpoint's ``tokenizer.json`` (or its run's
    ``tokenizer/tokenizer.json``; without one, no tokenizer files are written). ``out_dir`` must be new
    or empty."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output folder {out} exists and is not empty (choose a new --out, or empty it)")
    ckpt = None
    if isinstance(source, Transformer):
        model = source
    else:
        ckpt = checked_checkpoint(source)
        model = load_model(ckpt)
        tokenizer = tokenizer or _hf_tokenizer_of_run(ckpt) or find_tokenizer(ckpt)
    if tokenizer is not None and not Path(tokenizer).is_file():
        raise FileNotFoundError(f"tokenizer file not found: {tokenizer}")
    arch = _export_arch(model)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write_export(model, arch, out, tokenizer, dtype)
        write_card(ckpt, out, arch.model_type)  # README.md: the data, the training config, the scores
    except BaseException:  # a half-written folder would look like an export (and block the next try)
        for path in [out] if created else list(out.iterdir()):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    return out


def _write_export(model: Transformer, arch: archs.Arch, out: Path, tokenizer, dtype: str) -> None:
    from safetensors.torch import save_file

    cfg = model.cfg
    token_ids = export_tokenizer(Path(tokenizer), out, cfg.max_seq_len) if tokenizer is not None else {}
    if arch is archs.CUSTOM:
        config = custom.custom_config(cfg, token_ids, dtype)
        tensors = custom.export_tensors(model.state_dict(), cfg, DTYPES[dtype])
        custom.write_code(out)
    else:
        config = hf_config(cfg, arch, token_ids, dtype)
        tensors = _stock_tensors(model, arch, dtype)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    gen = {k.replace("_token", "_token_id"): v for k, v in token_ids.items() if v is not None}
    (out / "generation_config.json").write_text(json.dumps(gen | {"do_sample": False}, indent=2) + "\n",
                                               encoding="utf-8")


def _export_arch(model: Transformer) -> archs.Arch:
    """The stock architecture that expresses the model exactly, else our own code. Softmax-routed stock
    MoE architectures have no routing bias: a model whose trained auxiliary-loss-free biases would change
    the choice of experts goes to our own code (or is refused, when the config names the architecture)."""
    cfg = model.cfg
    arch = archs.choose(cfg)  # refuses a named architecture that cannot express cfg, before anything is written
    if arch.moe and not arch.routing_bias and cfg.moe.balance == "aux_free" and any(
            bool(m.router_bias.any()) for m in model.moe_layers()):
        if cfg.hf_architecture:
            raise ValueError(f"config field 'model.moe.balance': 'aux_free' biases change which experts are chosen "
                             f"and {arch.model_type} has no routing bias, so this model cannot be exported exactly "
                             "(use router_score = 'sigmoid' -> Glm4Moe, or hf_architecture = 'pretrain')")
        return archs.CUSTOM
    return arch


def _stock_tensors(model: Transformer, arch: archs.Arch, dtype: str) -> dict[str, torch.Tensor]:
    cfg, state, tensors = model.cfg, model.state_dict(), {}
    for ours, hf in name_map(cfg, arch).items():
        # transformers keeps the routing bias in fp32 whatever the weight dtype.
        target = torch.float32 if hf.endswith("e_score_correction_bias") else DTYPES[dtype]
        tensors[hf] = state[ours].detach().to(target).contiguous().cpu()
    return arch.export_tensors(tensors, cfg, DTYPES[dtype])


def _hf_tokenizer_of_run(ckpt: Path) -> Path | None:
    """A checkpoint keeps a copy of tokenizer.json only; when its run trained with an imported model's
    tokenizer (``tokenizer.path``), that file's directory also holds the special tokens and chat template."""
    from pretrain import configlib

    try:
        path = configlib.read_file(ckpt / "config.toml").get("tokenizer", {}).get("path", "")
    except (ValueError, OSError):  # no run config (a bare checkpoint) or an unreadable one: nothing to find
        return None
    candidate = Path(path) if path else None
    if candidate is None or not candidate.is_file() or not (candidate.parent / "tokenizer_config.json").is_file():
        return None
    copy = ckpt / "tokenizer.json"
    return candidate if not copy.is_file() or copy.read_bytes() == candidate.read_bytes() else None


def import_hf(directory: str | Path, out: str | Path | None = None) -> Transformer:
    """Load a Hugging Face directory of a registered architecture as a Transformer (float32).

    With ``out``, save it there as a checkpoint: model.safetensors and model_config.json, the model's own
    tokenizer files, and ``continue.toml``, a run config that continues pre-training from it
    (``pretrain train OUT/continue.toml data.tokens=...``)."""
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}")
    try:
        hf = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_path}: not valid JSON ({err})") from None
    text_arch = unwrapping(hf.get("model_type"))
    multimodal = text_arch is not None and isinstance(hf.get("text_config"), dict)
    if multimodal:  # e.g. Gemma 3 4B and up: import the language model (exported back as Gemma3ForCausalLM)
        hf = {"model_type": text_arch.model_type, "tie_word_embeddings": hf.get("tie_word_embeddings", True)} | \
            hf["text_config"]
    custom_code = hf.get("model_type") == archs.CUSTOM.model_type
    try:
        cfg = custom.config_from_custom(hf, str(cfg_path)) if custom_code else config_from_hf(hf, str(cfg_path))
    except KeyError as err:
        raise ValueError(f"{cfg_path}: required key {err.args[0]!r} is missing") from None
    except TypeError as err:  # e.g. "num_attention_heads": null
        raise ValueError(f"{cfg_path}: a required value is null or of the wrong type ({err})") from None
    from pretrain import configlib

    configlib.validate(cfg, "model")
    state = read_safetensors(directory)
    if custom_code:  # our own names: the tensors come back unchanged
        model = Transformer(cfg)
        model.load_state_dict(custom.import_tensors(state, model.state_dict(), cfg, directory), strict=True)
        if out is not None:
            _write_checkpoint(model, directory, Path(out))
        return model
    arch = families()[cfg.hf_architecture]
    state = unfuse_experts(language_model_only(state) if multimodal else state)
    state = arch.import_tensors(state, cfg)
    model = Transformer(cfg)
    ours = model.state_dict()
    if cfg.tie_embeddings and "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise ValueError(f"{directory}: tie_word_embeddings is true but lm_head.weight differs from the embedding")
    loaded = {}
    for our_key, hf_key in name_map(cfg, arch, legacy_mixtral=False).items():
        if hf_key not in state and hf_key.endswith("e_score_correction_bias"):
            loaded[our_key] = torch.zeros_like(ours[our_key])  # an untrained routing bias
            continue
        if hf_key not in state:
            raise ValueError(f"{directory}: tensor {hf_key} missing from the safetensors files")
        t = state.pop(hf_key)
        if t.shape != ours[our_key].shape:
            raise ValueError(f"{directory}: {hf_key} has shape {tuple(t.shape)}, expected {tuple(ours[our_key].shape)}")
        loaded[our_key] = t.to(torch.float32)
    state.pop("lm_head.weight", None)
    _drop_unused_bias(state, cfg, directory)
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
        _write_checkpoint(model, directory, Path(out))
    return model


def _drop_unused_bias(state: dict, cfg, directory: Path) -> None:
    """A zero routing bias is what Glm4Moe writes when nothing was learned; a non-zero one our config
    would ignore is refused rather than dropped."""
    for key in [k for k in state if k.endswith("e_score_correction_bias")]:
        if bool(state[key].any()):
            raise ValueError(f"{directory}: {key} is non-zero but model.moe.balance = {cfg.moe.balance!r} ignores it")
        state.pop(key)


def _write_checkpoint(model: Transformer, directory: Path, out: Path) -> None:
    from pretrain import configlib

    save_model(model, out)
    has_tokenizer = copy_hf_tokenizer(directory, out)
    run: dict = {"model": configlib.to_dict(model.cfg), "train": {"init_from": str(out.resolve())}}
    if has_tokenizer:
        run["tokenizer"] = {"path": str((out / "tokenizer.json").resolve())}
    configlib.write_toml(run, out / "continue.toml")
