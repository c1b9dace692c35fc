"""Hugging Face architectures as a registry: one module per family, no model_type branch elsewhere, and a
family registered from outside is exported and imported with its own hooks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from model_helpers import tiny_config

import pretrain.model.hf as hf_pkg
from pretrain.model import Transformer
from pretrain.model.hf import export_hf, import_hf
from pretrain.model.hf.archs import ARCHS, choose
from pretrain.model.hf.families import base
from pretrain.model.hf.families.base import Arch, register_family
from pretrain.model.hf.families.llama import Llama


def test_each_family_is_its_own_module_in_the_old_order():
    assert list(ARCHS) == ["llama", "qwen3", "qwen2", "mistral", "olmo2", "gemma3_text", "smollm3", "phi3",
                           "glm4_moe", "qwen3_moe", "mixtral"]
    assert len({type(a).__module__ for a in ARCHS.values() if type(a) is not Arch}) == 7  # the ones with hooks
    assert {a.model_type for a in ARCHS.values() if a.auto_export} == set(ARCHS) - {"phi3"}


def test_no_model_type_branch_outside_the_families():
    root = Path(hf_pkg.__file__).parent
    branch = re.compile(r"model_type\s*(==|!=|in\b|not in\b)|\"(gemma3|glm4_moe|qwen3_moe|mixtral|phi3)[a-z_]*\"")
    offenders = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py") if "families" not in p.parts
                 and p.parent.name != "remote" for i, line in enumerate(p.read_text().splitlines(), 1)
                 if branch.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []


@pytest.fixture
def llama_variant():
    @dataclass(frozen=True)
    class Tagged(Llama):
        def export_config(self, cfg) -> dict:
            return super().export_config(cfg) | {"tag": "family-test"}

        def import_config(self, cfg, hf: dict, where: str) -> None:
            if hf.get("tag") != "family-test":
                raise ValueError(f"{where}: tag = {hf.get('tag')!r} is not family-test")

    arch = register_family(Tagged("llama_family_test", "LlamaForCausalLM", free=ARCHS["llama"].free,
                                  attention_bias="all", order=999, auto_export=False))
    yield arch
    base.FAMILIES.remove("llama_family_test")


def test_a_registered_family_round_trips_with_its_hooks(tmp_path, llama_variant):
    torch.manual_seed(0)
    model = Transformer(tiny_config(hf_architecture="llama_family_test", init_std=0.2)).eval()
    assert choose(model.cfg) is llama_variant
    export_hf(model, tmp_path / "hf")
    written = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert written["model_type"] == "llama_family_test" and written["tag"] == "family-test"
    assert written["pretraining_tp"] == 1  # the Llama hook it extends still runs
    back = import_hf(tmp_path / "hf").eval()
    assert back.cfg.hf_architecture == "llama_family_test"
    x = torch.randint(0, model.cfg.vocab_size, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(back(x).logits, model(x).logits)
    written["tag"] = "other"
    (tmp_path / "hf" / "config.json").write_text(json.dumps(written))
    with pytest.raises(ValueError, match="tag = 'other' is not family-test"):
        import_hf(tmp_path / "hf")
    with pytest.raises(ValueError, match="registered twice"):
        register_family(Llama("llama", "LlamaForCausalLM"))
