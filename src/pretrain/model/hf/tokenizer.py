"""Tokenizer files for export and import.

Export of a model trained with our own tokenizer adds a post-processor that prepends ``<|bos|>`` (as our
loader does in training) and writes ``tokenizer_config.json`` / ``special_tokens_map.json`` so
``AutoTokenizer`` produces the ids the model was trained on. A model imported from Hugging Face keeps
its own tokenizer: import copies ``tokenizer.json`` with ``tokenizer_config.json`` (special tokens, chat
template) and ``special_tokens_map.json``, our tokenizer wrapper reads the special-token roles from them,
and export copies them back unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pretrain.tokenizer.specials import hf_roles

SPECIAL_TOKENS = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"}
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def copy_hf_tokenizer(src: Path, out: Path) -> bool:
    """Copy a Hugging Face tokenizer's files from ``src`` to ``out``; False when there is no tokenizer.json."""
    if not (src / "tokenizer.json").is_file():
        return False
    for name in HF_TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    return True


def export_tokenizer(tokenizer_json: Path, out: Path, max_len: int) -> dict[str, int | None]:
    """Write the tokenizer files into ``out``; returns the bos/eos/pad token ids for config.json."""
    from tokenizers import Tokenizer, processors

    try:
        tok = Tokenizer.from_file(str(tokenizer_json))
    except Exception as err:  # the tokenizers library raises a bare Exception for a damaged file
        raise ValueError(f"{tokenizer_json}: not a readable tokenizer.json ({err})") from None
    imported = hf_roles(tokenizer_json.parent)
    if imported and tok.token_to_id(SPECIAL_TOKENS["bos_token"]) is None:  # the model's own tokenizer
        copy_hf_tokenizer(tokenizer_json.parent, out)
        return {role: tok.token_to_id(text) for role, text in imported.items()}
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
