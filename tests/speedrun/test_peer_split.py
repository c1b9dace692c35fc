"""The peer benchmark (benchmarks/peers/): both sides get the same split and the same metric code."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from pretrain.speedrun import bits_per_char, shakespeare_text, split_text, text_sha256

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "benchmarks" / "peers"
# sha256 of the speedrun split's UTF-8 text (pretrain/speedrun.py): the benchmark checks both sides against it.
TRAIN_SHA256 = "058f3af5dd349eb2278f5cbcf7fe290e98416ab355736f2bb17554e6b26cf49c"
VAL_SHA256 = "d24adbdf3e47709b89b7b773b5646eacbd4471fd0697bfb35eda11727970ef53"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def split():
    return split_text(shakespeare_text())


def test_split_is_pinned(split):
    train, val = split
    assert (text_sha256(train), text_sha256(val)) == (TRAIN_SHA256, VAL_SHA256)


def test_nanochat_gets_the_same_characters(split, tmp_path):
    """What nanochat trains on is the training split, and what its scorer reads back is the validation
    split byte for byte (the scorer refuses a different sha256)."""
    import pyarrow.parquet as pq

    train, val = split
    driver, scorer = load("nanochat_speedrun"), load("nanochat_score")
    info = driver.write_nanochat_data(tmp_path, train, val, chunk_chars=512)
    files = sorted(str(p) for p in (tmp_path / "base_data_climbmix").glob("*.parquet"))
    assert len(files) == 2 and info["val_chars"] == len(val)
    assert text_sha256(scorer.val_text_from_parquet(files)) == VAL_SHA256
    rows = pq.read_table(files[0]).column("text").to_pylist()
    assert len(rows) == info["train_chunks"] and text_sha256("".join(rows)) == TRAIN_SHA256
    # Chunks fit nanochat's row (256 tokens of ~2.5 characters) so its loader crops little.
    assert max(len(r) for r in rows) <= 512 or all("\n" not in r[:-1] for r in rows if len(r) > 512)


@pytest.mark.parametrize("text,size", [("a\nbb\nccc\n", 4), ("abcdefgh", 3), ("x\n" * 50 + "y" * 30, 7), ("", 5)])
def test_chunks_cut_at_line_ends_and_conserve_the_text(text, size):
    chunks = load("nanochat_speedrun").chunk_lines(text, size)
    assert "".join(chunks) == text
    for c in chunks[:-1]:
        assert c.endswith("\n") or "\n" not in c
        assert len(c) <= size or "\n" not in c[:-1]


class CausalBigram(torch.nn.Module):
    """Logits from the previous token only; like nanochat's training forward it refuses T == 1."""

    def __init__(self, vocab: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g))

    def forward(self, x):
        assert x.shape[1] > 1, "Training forward pass should have T > 1"
        return self.table[x]


class Chars:
    def __init__(self, text):
        self.stoi = {c: i for i, c in enumerate(sorted(set(text)))}
        self.bos_id = len(self.stoi)

    def encode(self, text):
        return [self.stoi[c] for c in text]


def test_nanochat_adapter_scores_exactly_what_the_metric_scores_directly():
    scorer = load("nanochat_score")
    # 133 chars + BOS = 134 ids, 133 predictions: 11 windows of 12 and a last one of 1, scored alone
    # (batches of 11 windows), which nanochat's forward would refuse without the adapter.
    text = "to be or not to be\n" * 7
    tok = Chars(text)
    model = CausalBigram(len(tok.stoi) + 1)
    with pytest.raises(AssertionError):
        bits_per_char(model, tok, text, context=12, batch_size=11)
    wrapped = bits_per_char(scorer.LogitsOnly(model), tok, text, context=12, batch_size=11)
    direct = bits_per_char(model, tok, text, context=7, batch_size=64)  # same predictions, no short window
    assert wrapped == pytest.approx(direct, rel=1e-6) and math.isfinite(wrapped)


def test_both_sides_import_the_one_metric():
    """pretrain's side (cpu_speedrun.py) and nanochat's scorer call pretrain.speedrun.bits_per_char."""
    for path in (ROOT / "benchmarks" / "cpu_speedrun.py", PEERS / "nanochat_score.py"):
        imports = {(n.module, a.name) for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.ImportFrom) for a in n.names}
        assert ("pretrain.speedrun", "bits_per_char") in imports, path


def test_patch_touches_only_the_training_script():
    patch = (PEERS / "nanochat.patch").read_text()
    files = {line.split()[-1] for line in patch.splitlines() if line.startswith("+++ ")}
    assert files == {"b/scripts/base_train.py"}
    assert "--time-budget" in patch and "--seed" in patch


def test_the_sweep_grid_and_its_best_configuration(tmp_path):
    """The nanochat sweep tries every shape x depth x learning rate, and the comparison picks the lowest
    mean bits per character over seeds (not one lucky seed)."""
    sweep = load("nanochat_sweep")
    configs = sweep.grid(["128x32", "256x16"], [2, 3], [0.5, 1.0, 2.0])
    assert len(configs) == 12 and len({c["flags"] for c in configs}) == 12
    assert "--max-seq-len=256 --device-batch-size=16 --depth=3 --matrix-lr=0.04" in {c["flags"] for c in configs}
    runs = [{"label": "a", "flags": "--depth=2", "val_bits_per_char": 2.00},
            {"label": "a", "flags": "--depth=2", "val_bits_per_char": 2.20},
            {"label": "b", "flags": "--depth=3", "val_bits_per_char": 2.05},
            {"label": "b", "flags": "--depth=3", "val_bits_per_char": 2.06}]
    best = sweep.best_of(runs)
    assert (best["label"], best["mean_bits_per_char"]) == ("b", 2.055)
    (tmp_path / "sweep.json").write_text(json.dumps({"best": best}))
    assert load("nanochat_speedrun").best_flags(tmp_path / "sweep.json") == "--depth=3"
    with pytest.raises(SystemExit, match="256y16"):
        sweep.grid(["256y16"], [2], [1.0])


def test_the_comparison_pools_sweeps_and_takes_several_budgets(tmp_path):
    """A follow-up sweep around the first grid's winner is pooled with it (a configuration in both counts
    every seed), and one invocation can compare at 4 and 8 minutes; a bad budget is refused in one line."""
    peer = load("nanochat_speedrun")
    first = [{"label": "a", "flags": "--depth=2", "val_bits_per_char": 2.10},
             {"label": "b", "flags": "--depth=3", "val_bits_per_char": 2.12}]
    follow_up = [{"label": "b", "flags": "--depth=3", "val_bits_per_char": 2.06},
                 {"label": "c", "flags": "--depth=4", "val_bits_per_char": 2.30}]
    for name, runs in (("one.json", first), ("two.json", follow_up)):
        (tmp_path / name).write_text(json.dumps({"runs": runs, "best": peer.best_of(runs)}))
    # alone, the first sweep picks a; pooled, b's two seeds average 2.09 and win
    assert peer.best_flags(tmp_path / "one.json") == "--depth=2"
    assert peer.best_flags([tmp_path / "one.json", tmp_path / "two.json"]) == "--depth=3"
    with pytest.raises(SystemExit, match="missing.json"):
        peer.best_flags([tmp_path / "one.json", tmp_path / "missing.json"])
    assert peer.parse_minutes("4,8") == [4.0, 8.0]
    for bad in ("4,x", "0", ""):
        with pytest.raises(SystemExit, match="--minutes"):
            peer.parse_minutes(bad)
    # a vocabulary given to pretrain's side is given to nanochat's tokenizer too
    assert peer.shared_vocab([]) == 1024
    assert peer.shared_vocab(["model.dim=192", "tokenizer.vocab_size=2048"]) == 2048
    with pytest.raises(SystemExit, match="tokenizer.vocab_size"):
        peer.shared_vocab(["tokenizer.vocab_size=big"])
