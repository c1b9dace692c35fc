"""Export with our own modeling code: every preset (tiny widths), MoE, MTP and the other model features
load in transformers where pretrain is not installed, with our logits and our greedy continuation."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_helpers import randomise
from typer.testing import CliRunner

from pretrain.cli import app
from pretrain.model import Transformer
from pretrain.model.config import ModelConfig, MoEConfig, MTPConfig, RopeScalingConfig
from pretrain.model.generate import generate
from pretrain.model.hf import export_hf, import_hf
from pretrain.model.io import save_model
from pretrain.presets import PRESETS

LOADER = Path(__file__).parent / "hf_remote_load.py"
PAD = 3  # left padding of the second prompt in batched generation
SMALL = {"vocab_size": 96, "max_seq_len": 64, "multiple_of": 16}
# Each preset's own model fields at a tiny width (head counts kept where they shape the model).
PRESET_SHAPES = {
    "quickstart": {"dim": 32, "n_heads": 2},
    "tiny": {"dim": 32},
    "small": {"dim": 48, "n_layers": 2},
    "gpt2-124m": {"dim": 48, "n_layers": 2, "n_heads": 4},
    "llama-1b": {"dim": 64, "n_layers": 2, "n_heads": 8, "n_kv_heads": 2, "ffn_hidden": 96},
}
QUICKSTART = PRESETS["quickstart"]["model"] | PRESET_SHAPES["quickstart"]
# Features no preset uses, spread over a few models; all exported with our code.
FEATURES = {
    "moe-softmax-shared": {**QUICKSTART, "moe": MoEConfig(n_experts=4, top_k=2, n_shared=1, router_score="softmax",
                                                          first_dense_layers=1, balance="aux_free")},
    "moe-sigmoid-bias": {"dim": 32, "n_heads": 4, "moe": MoEConfig(n_experts=4, top_k=2)},
    "mtp": {**QUICKSTART, "mtp": MTPConfig(depth=1)},
    "gemma-like": {"dim": 32, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "attn_head_dim": 16,
                   "norm_placement": "sandwich", "norm_unit_offset": True, "scale_embeddings": True,
                   "activation": "gelu_tanh", "qk_norm": True, "attn_softcap": 20.0, "logit_softcap": 10.0,
                   "attn_scale": 0.3, "sliding_window": 8, "window_pattern": "SL", "rope_theta_local": 1e4,
                   "rope_theta": 1e6, "rope_scaling": RopeScalingConfig(type="yarn", factor=2.0)},
    "olmo-nope-llama3": {"dim": 32, "n_layers": 3, "n_heads": 4, "n_kv_heads": 1, "norm_placement": "post",
                         "qk_norm": True, "qk_norm_scope": "all", "qkv_bias": True, "attn_out_bias": True,
                         "mlp_bias": True, "rope_pattern": "RN",
                         "rope_scaling": RopeScalingConfig(type="llama3", factor=4.0, original_max_position=16)},
    "dynamic-windows-ve": {"dim": 32, "n_heads": 4, "value_embeddings": "V", "sliding_window": 6, "window_pattern": "S",
                           "smear_gate": True, "rope_scaling": RopeScalingConfig(type="dynamic", factor=2.0,
                                                                                 original_max_position=16)},
    "linear-rope-ungated-silu": {"dim": 32, "n_heads": 4, "mlp_gated": False, "activation": "silu",
                                 "rope_scaling": RopeScalingConfig(type="linear", factor=2.0)},
}


def _model(fields: dict) -> Transformer:
    model = randomise(Transformer(ModelConfig(**(fields | SMALL))))
    for moe in model.moe_layers():  # a trained auxiliary-loss-free bias: it changes which experts are chosen
        moe.router_bias.copy_(torch.linspace(-0.3, 0.3, moe.n_experts))
    return model


def _cases() -> dict[str, tuple[dict, bool]]:
    """name -> (model fields, export with our code even where a stock architecture fits)."""
    cases = {}
    for preset, shape in PRESET_SHAPES.items():
        fields = PRESETS[preset]["model"] | shape
        cases[preset] = (fields, False)
        if preset != "quickstart":  # the stock-architecture presets, also through our code
            cases[preset + "/own-code"] = (fields, True)
    cases |= {name: (fields, True) for name, fields in FEATURES.items()}
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Export every case, load them all in one pretrain-free subprocess; (ours, theirs) per case."""
    root = tmp_path_factory.mktemp("hf_custom")
    torch.manual_seed(0)
    ours, jobs = {}, {}
    for name, (fields, own_code) in CASES.items():
        model = _model(fields | ({"hf_architecture": "pretrain"} if own_code else {}))
        out = export_hf(model, root / name.replace("/", "_"))
        x = torch.randint(0, 96, (2, 10))
        with torch.no_grad():
            full = model(x)
            ours[name] = {"model": model, "dir": out, "logits": full.logits, "last_hidden": model.norm(full.hidden),
                          "generated": generate(model, x, 32, greedy=True),
                          "short": generate(model, x[1:, PAD:], 32, greedy=True)[0, 10 - PAD:]}
        remote = json.loads((out / "config.json").read_text())["model_type"] == "pretrain"
        jobs[name] = {"dir": str(out), "remote": remote, "x": x, "pad": PAD}
    torch.save(jobs, root / "cases.pt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env |= {"HF_MODULES_CACHE": str(root / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-I", str(LOADER), str(root / "cases.pt"), str(root / "results.pt")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ours, torch.load(root / "results.pt")


def test_the_loading_process_has_no_pretrain(loaded):
    assert loaded[1]["__pretrain_importable__"] is False


@pytest.mark.parametrize("name", list(CASES))
def test_transformers_matches_our_logits_and_greedy_generation(loaded, name):
    ours, theirs = loaded[0][name], loaded[1][name]
    torch.testing.assert_close(theirs["logits"], ours["logits"], rtol=0, atol=1e-4)
    assert torch.equal(theirs["generated"], ours["generated"])  # 32 tokens through the KV cache
    cfg = ours["model"].cfg
    assert len(theirs["hidden"]) == cfg.n_layers + 1  # embeddings, then each layer
    torch.testing.assert_close(theirs["hidden"][-1], ours["last_hidden"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", [n for n, (fields, _) in CASES.items()
                                  if getattr(fields.get("rope_scaling"), "type", "") != "dynamic"])
def test_left_padded_batch_generates_what_each_prompt_does_alone(loaded, name):
    """The attention mask keeps padding out of attention and the smear gate; positions start at each
    prompt's first token (dynamic NTK is left out: its frequencies follow the batch's longest row)."""
    ours, theirs = loaded[0][name], loaded[1][name]
    assert torch.equal(theirs["padded"][0], ours["generated"][0, 10:])
    assert torch.equal(theirs["padded"][1], ours["short"])


@pytest.mark.parametrize("name", list(CASES))
def test_own_code_only_where_no_stock_architecture_fits(loaded, name):
    ours, theirs = loaded[0][name], loaded[1][name]
    files = {p.name for p in ours["dir"].iterdir()}
    config = json.loads((ours["dir"] / "config.json").read_text())
    if CASES[name][1] or name == "quickstart":
        assert theirs["class"] == "PretrainForCausalLM" and theirs["module"].startswith("transformers_modules")
        assert {"configuration_pretrain.py", "modeling_pretrain.py"} <= files
        assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_pretrain.PretrainForCausalLM"
    else:  # loaded without trust_remote_code
        assert theirs["class"] == "LlamaForCausalLM" and "auto_map" not in config
        assert not any(f.endswith(".py") for f in files)


@pytest.mark.parametrize("name", [n for n, (_, own) in CASES.items() if own or n == "quickstart"])
def test_import_reads_the_folder_back_bit_exact(loaded, name, tmp_path):
    model = loaded[0][name]["model"]
    back = import_hf(loaded[0][name]["dir"], tmp_path / "ckpt")
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("mtp.")}  # MTP is not exported
    got = back.state_dict()
    assert set(got) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), key
    assert back.cfg.hf_architecture == "pretrain" and back.cfg.mtp.depth == 0
    again = export_hf(back, tmp_path / "again")  # import -> export writes the same config
    assert json.loads((again / "config.json").read_text()) == json.loads((loaded[0][name]["dir"] / "config.json")
                                                                          .read_text())


@pytest.mark.parametrize("name", ["quickstart", "moe-softmax-shared"])
def test_saved_by_transformers_imports_back_bit_exact(loaded, name, tmp_path):
    """A folder transformers re-saves (after fine-tuning there, say) still imports: same tensors."""
    import transformers

    model = loaded[0][name]["model"]
    hf = transformers.AutoModelForCausalLM.from_pretrained(loaded[0][name]["dir"], trust_remote_code=True,
                                                           dtype=torch.float32)
    hf.save_pretrained(tmp_path / "resaved")
    back = import_hf(tmp_path / "resaved")
    for key, tensor in model.state_dict().items():
        if not key.startswith("mtp."):
            assert torch.equal(back.state_dict()[key], tensor), key


def test_bf16_export_keeps_the_routing_bias_in_fp32(tmp_path):
    model = _model(FEATURES["moe-softmax-shared"])
    back = import_hf(export_hf(model, tmp_path / "bf16", dtype="bfloat16"))
    for key, tensor in model.state_dict().items():
        if not key.startswith("mtp."):
            want = tensor if key.endswith("router_bias") else tensor.to(torch.bfloat16).float()
            assert torch.equal(back.state_dict()[key], want), key


def test_written_code_imports_only_torch_and_transformers():
    from pretrain.model.hf.custom import CODE_FILES, REMOTE

    for name in CODE_FILES:
        text = (REMOTE / name).read_text()
        imports = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imports |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:  # relative: the other written file
                imports.add(node.module.split(".")[0])
        assert imports <= {"__future__", "math", "torch", "transformers"}, (name, imports)
        assert "transformers 5.25.0" in text  # the version it was tested with


# ------------------------------------------------------------------------------------ CLI and bad input
def _checkpoint(tmp_path, tokenizer_file) -> Path:
    """A run directory whose final checkpoint has a manifest, as training writes it."""
    from pretrain.train.checkpoint import write_checkpoint

    model = _model(QUICKSTART)
    root = tmp_path / "run" / "checkpoints"

    def write(tmp: Path) -> None:
        save_model(model, tmp)
        (tmp / "tokenizer.json").write_bytes(Path(tokenizer_file).read_bytes())

    write_checkpoint(root, "final", write, {"step": 1})
    return tmp_path / "run"


def test_cli_exports_the_quickstart_model_with_its_code(tmp_path, tokenizer_file):
    run = _checkpoint(tmp_path, tokenizer_file)
    result = CliRunner().invoke(app, ["export", "hf", str(run), "--out", str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    assert "PretrainForCausalLM" in result.output and "trust_remote_code=True" in result.output
    assert (tmp_path / "hf" / "modeling_pretrain.py").is_file() and (tmp_path / "hf" / "tokenizer.json").is_file()


def _cli_error(args: list[str], monkeypatch, capsys) -> str:
    """Run the pretrain command (its main(), which turns errors into messages); its one-line error."""
    from pretrain.cli import main

    monkeypatch.setattr(sys, "argv", ["pretrain", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_input_is_one_line_each(tmp_path, tokenizer_file, monkeypatch, capsys):
    def error(*args):
        return _cli_error(["export", "hf", *map(str, args)], monkeypatch, capsys)

    run = _checkpoint(tmp_path, tokenizer_file)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert "exists and is not empty" in error(run, "--out", tmp_path / "busy")
    assert "not found" in error(tmp_path / "nowhere", "--out", tmp_path / "a")
    (tmp_path / "started" / "checkpoints" / ".tmp-step_00000010").mkdir(parents=True)  # no checkpoint saved yet
    assert "no finished checkpoint" in error(tmp_path / "started", "--out", tmp_path / "b")
    weights = run / "checkpoints" / "final" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight: same size, another checksum
    weights.write_bytes(bytes(data))
    assert "checksum mismatch" in error(run, "--out", tmp_path / "c")
    assert not (tmp_path / "c").exists()
    weights.write_bytes(bytes(data[: len(data) // 2]))  # a half-copied checkpoint
    assert "incomplete" in error(run, "--out", tmp_path / "c")
    (tmp_path / "broken.json").write_text("{not json")  # fails once the folder exists: nothing is left behind
    ckpt = tmp_path / "ckpt"
    save_model(_model(QUICKSTART), ckpt)
    assert "not a readable tokenizer.json" in error(ckpt, "--out", tmp_path / "d", "--tokenizer", tmp_path / "broken.json")
    assert not (tmp_path / "d").exists()
