"""A damaged model.safetensors (truncated, corrupted header, not safetensors, wrong dtype) is refused
in one line naming the file, by the API and by the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from model_helpers import tiny_config
from safetensors.torch import load_file, save_file

from pretrain.model import Transformer
from pretrain.model.io import WEIGHTS, load_model, read_weights, save_model


def damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":  # a copy that stopped half way
        path.write_bytes(data[: len(data) // 2])
    elif how == "header":  # the 8-byte header length says more than the file holds
        path.write_bytes((2**40).to_bytes(8, "little") + data[8:])
    elif how == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "header", "garbage", "empty"])
def test_damaged_weights_are_one_line_naming_the_file(tmp_path, how):
    save_model(Transformer(tiny_config()), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS
    damage(weights, how)
    with pytest.raises(ValueError) as info:
        load_model(tmp_path / "ckpt")
    msg = str(info.value)
    assert msg.startswith(f"{weights}: not a readable safetensors file") and "\n" not in msg
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        read_weights(weights)


def test_integer_weights_are_refused_not_cast(tmp_path):
    save_model(Transformer(tiny_config()), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS
    state = load_file(str(weights))
    key = sorted(state)[0]
    state[key] = state[key].to(torch.int64)
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=rf"{key} has dtype torch.int64 where the model holds torch.float32"):
        load_model(tmp_path / "ckpt")


def test_cli_prints_one_line(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    save_model(Transformer(tiny_config()), tmp_path / "ckpt")
    Tokenizer(WordLevel({"<|bos|>": 0, "<|eos|>": 1, "hi": 2, "?": 3}, unk_token="?")).save(
        str(tmp_path / "ckpt" / "tokenizer.json"))
    damage(tmp_path / "ckpt" / WEIGHTS, "truncated")
    code = "import sys; from pretrain.cli import main; sys.argv = ['pretrain', *sys.argv[1:]]; main()"
    proc = subprocess.run([sys.executable, "-c", code, "generate", str(tmp_path / "ckpt"), "--prompt", "hi"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and str(tmp_path / "ckpt" / WEIGHTS) in lines[0]
