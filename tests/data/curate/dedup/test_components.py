"""MinHash's connected components in rounds over hash-partitioned edge files (large-star / small-star):
the same removals as a single-process connected-components pass, for any number of partitions, and a
run interrupted between rounds resumes without redoing a finished round."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.dedup.collected import components
from pretrain.data.curate.dedup.components import group_of, write_edges
from pretrain.data.curate.execution import runner as runner_mod
from pretrain.data.curate.registry import build_step


def _chain_graph(seed: int, n_shards: int = 6, per_shard: int = 400) -> np.ndarray:
    """Undirected edges (a < b) of document keys: long chains through nodes in random order (many
    rounds: a chain's smallest node is far from most of its members), some random extra edges, and
    nodes in no edge at all."""
    rng = np.random.default_rng(seed)
    keys = (np.repeat(np.arange(n_shards, dtype=np.uint64), per_shard) << np.uint64(32)) | np.tile(
        np.arange(per_shard, dtype=np.uint64), n_shards)
    nodes = rng.permutation(keys)[: int(len(keys) * 0.8)]
    edges = []
    start = 0
    while start < len(nodes) - 1:
        n = int(rng.integers(2, 300))
        chain = nodes[start: start + n]
        edges.append(np.stack([chain[:-1], chain[1:]], axis=1))
        start += n
    e = np.concatenate(edges)
    extra = rng.choice(nodes, size=(60, 2))
    e = np.concatenate([e, extra[extra[:, 0] != extra[:, 1]]])
    return np.sort(e, axis=1)


def _run_rounds(work: Path, edges: np.ndarray, n_shards: int, parts: int) -> tuple[np.ndarray, int]:
    """The components stages of the minhash_dedup step, driven as the runner drives them (stage 2 on)."""
    step = build_step({"type": "minhash_dedup", "partitions": parts, "component_partitions": parts}, "steps[0]")
    step.work, step.n_shards = work, n_shards
    groups = step.verify_parts()
    src = group_of(edges[:, 0], n_shards, groups)  # as the verify tasks write them: by the first document's group
    for g in range(groups):
        write_edges(work, g, edges[src == g, 0], edges[src == g, 1], parts)
    merged: list[dict] = [{}, {}]  # stages 0-1 (pairs, verify) are not run here
    while n_tasks := step.more_stages(merged):
        step.previous = merged[-1]
        got = [step.run_stage(len(merged), p) for p in range(n_tasks)]
        merged.append({k: sum(r[k] for r in got if k in r) for r in got for k in r})
    rows = np.concatenate([np.load(f) for f in sorted(work.glob("rm-g*.npy")) if not f.name.endswith(".off.npy")])
    return np.sort(rows, order=["doc"]), (len(merged) - 2) // 2


@pytest.mark.parametrize("seed", [0, 1])
def test_rounds_match_single_process_components(tmp_path: Path, seed: int):
    edges = _chain_graph(seed)
    expected = np.sort(components(edges.astype(np.uint64)), order=["doc"])  # scipy, over all edges at once
    rounds = {}
    for parts in (1, 2, 4):
        work = tmp_path / f"p{parts}"
        work.mkdir()
        rows, rounds[parts] = _run_rounds(work, edges, 6, parts)
        assert rows.tolist() == expected.tolist()  # every removal, each with its component's smallest key
        for g, f in enumerate(sorted(work.glob("rm-g*.off.npy"))):  # each table holds only its group's shards
            off = np.load(f)
            assert all(off[s + 1] == off[s] for s in range(6) if s * parts // 6 != g)
    assert rounds[1] == rounds[2] == rounds[4] >= 4, rounds  # long chains took several rounds, any P alike


def test_empty_graph_removes_nothing(tmp_path: Path):
    rows, rounds = _run_rounds(tmp_path, np.zeros((0, 2), dtype=np.uint64), 3, 2)
    assert len(rows) == 0 and rounds == 1


def _chain_corpus(path: Path) -> Path:
    """Chains of near duplicates (each a one-word edit of the one before): clusters with long paths."""
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(3000)]
    recs = []
    for c in range(6):
        words = [rng.choice(vocab) for _ in range(120)]
        for j in range(12):
            words[rng.randrange(120)] = rng.choice(vocab)
            recs.append({"id": f"c{c}-{j}", "text": " ".join(words)})
        recs.append({"id": f"solo{c}", "text": " ".join(rng.choice(vocab) for _ in range(120))})
    rng.shuffle(recs)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _outputs(out: Path) -> dict[str, bytes]:
    return {f"{d}/{f.name}": f.read_bytes() for d in ("data", "removed") for f in sorted((out / d).glob("*"))}


def test_resume_between_rounds_redoes_no_finished_stage(tmp_path: Path, monkeypatch):
    src = _chain_corpus(tmp_path / "docs.jsonl")
    cfg = CurateConfig(shard_docs=10, steps=[{"type": "minhash_dedup", "partitions": 2, "component_partitions": 2}])
    fresh = curate([src], tmp_path / "fresh", cfg, workers=1, progress=False)
    rounds = fresh["steps"][0]["index"]["component_rounds"]
    assert rounds >= 2 and fresh["removed"] > 30
    real = runner_mod.stage_task
    calls: list[tuple[int, int]] = []

    def crash_in_round_1(*a):
        stage, part = a[4], a[5]
        if stage == 4 and part == 1:  # round 1's large-star, after its first task
            raise KeyboardInterrupt("simulated kill")
        calls.append((stage, part))
        return real(*a)

    monkeypatch.setattr(runner_mod, "stage_task", crash_in_round_1)
    with pytest.raises(KeyboardInterrupt):
        curate([src], tmp_path / "cur", cfg, workers=1, progress=False)
    assert (3, 0) in calls and (4, 0) in calls
    calls.clear()
    monkeypatch.setattr(runner_mod, "stage_task", lambda *a: (calls.append((a[4], a[5])), real(*a))[1])
    stats = curate([src], tmp_path / "cur", cfg, workers=1, progress=False)
    assert min(calls) == (4, 1)  # no finished stage task redone, round 0 included
    assert _outputs(tmp_path / "cur") == _outputs(tmp_path / "fresh")
    assert stats["steps"][0]["index"] == fresh["steps"][0]["index"]
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
