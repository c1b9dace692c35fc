"""A small deterministic multi-domain corpus for tokenizer, shard and loader tests (no files, no network)."""

from __future__ import annotations

import random

from pretrain.data.record import Document

_WORDS = ("the model data token train loss layer attention value memory sequence batch learning rate "
          "weight gradient step corpus document domain mixture schedule shard index context window "
          "language quality filter sample epoch curriculum compute budget scaling law").split()
_NAMES = "alpha beta gamma delta count total items result value index buffer offset".split()
_MULTI = ["数据", "模型", "训练", "语言", "Ünïcödé", "données", "модель", "обучение", "نموذج", "🙂", "🚀",
          "ἀρχή", "é\u0301", "\u200d", "naïve", "straße"]


def _prose(rng: random.Random) -> str:
    paras = []
    for _ in range(rng.randint(2, 6)):
        sents = []
        for _ in range(rng.randint(2, 6)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 14))]
            sents.append(" ".join(words).capitalize() + rng.choice([".", ".", "?", "!"]))
        paras.append(" ".join(sents))
    return "\n\n".join(paras) + "\n"


def _code(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(2, 5)):
        name = f"{rng.choice(_NAMES)}_{rng.choice(_NAMES)}"
        args = ", ".join(rng.sample(_NAMES, rng.randint(1, 3)))
        out.append(f"def {name}({args}):\n    \"\"\"Compute the {rng.choice(_WORDS)}.\"\"\"\n")
        for _ in range(rng.randint(2, 6)):
            a, b = rng.choice(_NAMES), rng.choice(_NAMES)
            out.append(f"    {a} = {b} + {rng.randint(0, 9999)}\n    if {a} > {rng.randint(0, 99)}:\n"
                       f"        return {a}\n")
        out.append("    return None\n\n")
    return "".join(out)


def _math(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(5, 20)):
        a, b = rng.randint(0, 99999), rng.randint(0, 9999)
        op = rng.choice("+-*")
        val = a + b if op == "+" else a - b if op == "-" else a * b
        lines.append(f"{a} {op} {b} = {val}")
    return "\n".join(lines) + "\n"


def _multilingual(rng: random.Random) -> str:
    return " ".join(rng.choice(_MULTI + _WORDS) for _ in range(rng.randint(30, 120))) + "\n"


GENERATORS = {"code": _code, "prose": _prose, "math": _math, "multilingual": _multilingual}


def make_corpus(docs_per_domain: int = 40, seed: int = 0) -> list[Document]:
    """Documents of four domains, interleaved, deterministic for a seed."""
    rng = random.Random(seed)
    out = []
    for i in range(docs_per_domain):
        for domain, gen in GENERATORS.items():
            out.append(Document(text=gen(rng), source=f"synthetic:{domain}:{i}", domain=domain, lang="en"))
    return out
