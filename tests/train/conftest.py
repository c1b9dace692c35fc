"""Fixtures for trainer tests: a tiny two-domain corpus, its tokenizer and token shards, made once per session."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from pretrain.data.record import Document

# Test modules here import this conftest by name (tiny_cfg, torchrun_cmd ...): the suite uses
# --import-mode=importlib. The helper modules are in tests/helpers/ (tests/conftest.py).
sys.path.insert(0, str(Path(__file__).parent))

WORDS = ("the model data token train loss layer attention value memory sequence batch learning rate weight "
         "gradient step corpus document domain mixture schedule shard index context window").split()
NAMES = "alpha beta gamma delta count total items result value index buffer offset".split()


def make_corpus(n_per_domain: int = 80, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n_per_domain):
        text = " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
                        for _ in range(rng.randint(2, 8)))
        docs.append(Document(text, source=f"prose:{i}", domain="prose"))
        lines = [f"def {rng.choice(NAMES)}_{j}({rng.choice(NAMES)}):\n    return {rng.choice(NAMES)} + {j}\n"
                 for j in range(rng.randint(1, 6))]
        docs.append(Document("\n".join(lines), source=f"code:{i}", domain="code"))
    return docs


@dataclass
class TinyData:
    root: Path
    tokens: Path
    tokenizer: Path
    vocab_size: int


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    from pretrain.data.record import write_jsonl
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer

    root = tmp_path_factory.mktemp("train_data")
    docs = make_corpus()
    write_jsonl(root / "docs.jsonl", docs)
    tok = train_tokenizer(docs, TokenizerConfig(vocab_size=320, sample_bytes_per_domain=60_000, n_reserved=2),
                          root / "tokenizer")
    tokenize_corpus(root / "docs.jsonl", tok, root / "tokens", val_fraction=0.15, workers=1)
    return TinyData(root, root / "tokens", root / "tokenizer" / "tokenizer.json", tok.vocab_size)


def tiny_cfg(data: TinyData, *overrides: str):
    """The tiny preset shrunk further, pointed at the session's shards."""
    from pretrain.config import resolve

    base = [
        f"data.tokens={str(data.tokens)!r}".replace("'", '"'),
        f"tokenizer.path={str(data.tokenizer)!r}".replace("'", '"'),
        "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32",
        "train.seq_len=32", "train.micro_batch=4", "train.max_steps=12", "train.warmup_steps=2",
        "train.log_interval=1", "train.peak_flops=1e11", "train.lr=3e-3",
        "eval.batch_size=8", "eval.max_docs_per_domain=4", "eval.max_tokens_per_domain=512",
    ]
    return resolve("tiny", base + list(overrides))


@pytest.fixture(autouse=True)
def _threads():
    # Tests share 2 cores with other work; one thread keeps runs deterministic and polite.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def torchrun_cmd(data: TinyData, run, *overrides: str) -> list[str]:
    """``python -m torch.distributed.run`` of ``pretrain.train`` on 2 local processes, with the tiny
    shape of tiny_cfg pointed at the session's shards; later overrides win."""
    import sys

    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "pretrain.train", "tiny",
        f'data.tokens="{data.tokens}"', f'tokenizer.path="{data.tokenizer}"',
        "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32",
        "train.seq_len=32", "train.warmup_steps=2", "train.log_interval=1", "train.peak_flops=1e11",
        "train.lr=3e-3", "eval.batch_size=8", "eval.max_docs_per_domain=4", "eval.max_tokens_per_domain=512",
        *overrides, "--run-dir", str(run), "--no-progress",
    ]
