"""End to end: the mixed directory through the default pipeline; conservation, outputs, lineage, stats,
determinism across worker counts, resumption, config errors and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from curate_helpers import read_records

from pretrain.configlib import ConfigError, validate
from pretrain.data.curate import CurateConfig, curate, print_funnel
from pretrain.data.curate.execution import runner as runner_mod
from pretrain.data.record import open_text, read_dir


def cfg(**kw) -> CurateConfig:
    return CurateConfig(max_record_bytes=16384, **kw)


def test_mixed_directory_default_pipeline(mixed_dir: Path, tmp_path: Path):
    out = tmp_path / "cur"
    stats = curate([mixed_dir], out, cfg(), workers=1, progress=False)
    for k in ("documents_in", "kept", "removed", "quarantined"):
        assert isinstance(stats[k], int)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    assert stats["quarantined"] == 9  # the nine bad records of the fixture, nothing else
    assert json.loads((out / "stats.json").read_text())["kept"] == stats["kept"]
    kept, removed, quarantined = read_records(out / "data"), read_records(out / "removed"), read_records(out / "quarantine")
    assert (len(kept), len(removed), len(quarantined)) == (stats["kept"], stats["removed"], stats["quarantined"])
    assert all(set(r) == {"id", "text", "source", "domain", "lang", "meta"} for r in kept + removed + quarantined)
    assert all(r["source"] for r in kept + removed + quarantined)
    assert all(r["meta"]["removed_by"] and r["meta"]["reason"] for r in removed)
    assert all(r["meta"]["reason"] for r in quarantined)
    # river.md and copy.txt are the same text: the first in sorted input order (copy.txt) is kept
    dup = [r for r in removed if r["source"].endswith("river.md")]
    assert dup and dup[0]["meta"]["removed_by"] == "exact_dedup"
    assert any(r["source"].endswith("copy.txt") and r["id"] == dup[0]["meta"]["duplicate_of"] for r in kept)
    # HTML was extracted: language labelled, navigation gone
    web = {r["lang"]: r for r in kept if r["domain"] == "web"}
    assert set(web) == {"en", "de", "fr"}
    assert all("<p>" not in r["text"] and "Home | Next" not in r["text"] for r in web.values())
    # code kept as code (indentation intact), domains from globs and from the records
    code = [r for r in kept if r["source"].endswith("geometry.py")][0]
    assert code["domain"] == "code" and "\n    return math.pi" in code["text"]
    assert {"code", "web", "prose", "books", "wiki", "default"} <= set(stats["domains"])
    steps = {s["name"]: s for s in stats["steps"]}
    assert steps["exact_dedup"]["reasons"]["duplicate"]["documents"] >= 1
    assert steps["gopher_quality"]["skipped"] > 0  # code / books are not judged by web rules
    for s in stats["steps"]:
        assert s["documents_in"] == s["kept"] + s["removed"]
    assert stats["samples"] and all(len(v) <= 3 for v in stats["samples"].values())
    assert not (out / "work").exists()
    print_funnel(stats)


def _snapshot(out: Path) -> dict[str, str]:
    snap = {}
    for sub in ("data", "removed", "quarantine"):
        for f in sorted((out / sub).glob("*.zst")):
            with open_text(f) as fh:
                snap[f"{sub}/{f.name}"] = fh.read()
    return snap


@pytest.mark.slow
def test_same_output_for_any_worker_count(mixed_dir: Path, tmp_path: Path):
    c = cfg(shard_docs=3, files_per_shard=2)
    s1 = curate([mixed_dir], tmp_path / "w1", c, workers=1, progress=False)
    s2 = curate([mixed_dir], tmp_path / "w2", c, workers=2, progress=False)
    assert _snapshot(tmp_path / "w1") == _snapshot(tmp_path / "w2")
    drop = {"seconds", "workers", "timing", "executor"}
    assert {k: v for k, v in s1.items() if k not in drop} == {k: v for k, v in s2.items() if k not in drop}
    assert s1["shards"] > 4


LIGHT = [{"type": "normalize"}, {"type": "exact_dedup"}, {"type": "length", "min_chars": 30},
         {"type": "minhash_dedup"}]


def test_resume_after_interruption(mixed_dir: Path, tmp_path: Path, monkeypatch):
    c = cfg(shard_docs=3, files_per_shard=2, steps=LIGHT)
    out = tmp_path / "cur"
    real = runner_mod.shard_task
    calls: list[tuple[int, int]] = []

    def crash_on_shard_3(cfg_, out_, key, k, shard, n):
        if k == 0 and shard.index == 3:
            raise KeyboardInterrupt("simulated kill")
        calls.append((k, shard.index))
        return real(cfg_, out_, key, k, shard, n)

    monkeypatch.setattr(runner_mod, "shard_task", crash_on_shard_3)
    with pytest.raises(KeyboardInterrupt):
        curate([mixed_dir], out, c, workers=1, progress=False)
    first = list(calls)
    assert (0, 0) in first and (0, 3) not in first
    calls.clear()
    monkeypatch.setattr(runner_mod, "shard_task", lambda *a: (calls.append((a[3], a[4].index)), real(*a))[1])
    stats = curate([mixed_dir], out, c, workers=1, progress=False)
    seg0_redone = [i for k, i in calls if k == 0]
    assert seg0_redone == [i for i in range(stats["shards"]) if i >= 3]  # finished shards not redone
    fresh = curate([mixed_dir], tmp_path / "fresh", c, workers=1, progress=False)
    assert _snapshot(out) == _snapshot(tmp_path / "fresh")
    assert stats["kept"] == fresh["kept"]
    # a finished run is not redone; a changed config starts over
    calls.clear()
    curate([mixed_dir], out, c, workers=1, progress=False)
    assert calls == []
    again = curate([mixed_dir], out, cfg(shard_docs=3, files_per_shard=2, keep_removed=False, steps=LIGHT), workers=1,
                   progress=False)
    assert calls and not (out / "removed").exists() and again["removed"] == stats["removed"]


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"steps\[1\]\.type"):
        validate(CurateConfig(steps=[{"type": "normalize"}, {"type": "nope"}]))
    with pytest.raises(ConfigError, match=r"steps\[0\]\.min_wrods.*did you mean 'min_words'"):
        validate(CurateConfig(steps=[{"type": "gopher_quality", "min_wrods": 3}]))
    with pytest.raises(ConfigError, match=r"steps\[0\]\.num_perm"):
        validate(CurateConfig(steps=[{"type": "minhash_dedup", "num_perm": 100}]))
    with pytest.raises(ConfigError, match="output_format"):
        validate(CurateConfig(output_format="csv"))


def test_parquet_output_and_custom_steps(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"document number {i} " * 5}) + "\n" for i in range(5)))
    c = CurateConfig(output_format="parquet", steps=[{"type": "length", "min_chars": 90},
                                                       {"type": "normalize", "name": "norm"}])
    stats = curate([src], tmp_path / "o", c, workers=1, progress=False)
    import pyarrow.parquet as pq

    t = pq.read_table(next((tmp_path / "o" / "data").glob("*.parquet")))
    assert t.num_rows == stats["kept"] == 5 - 0 and t.column_names == ["id", "text", "source", "domain", "lang", "meta"]
    assert [s["name"] for s in stats["steps"]] == ["length", "norm"]


def test_builtin_like_corpus_is_kept(tmp_path: Path, prose):
    """Clean curated text (stdlib code and docstrings, verse) must survive the default pipeline."""
    import importlib
    import json as json_pkg

    from pretrain.data.record import Document

    code = [Document(text=f.read_text(), source=str(f), domain="code", lang="en")
            for f in sorted(Path(json_pkg.__file__).parent.glob("*.py"))]
    docs = []
    for name in ("json", "textwrap", "shlex", "string", "fnmatch", "heapq", "bisect", "glob", "html", "base64"):
        mod = importlib.import_module(name)
        parts = [f"{name}\n\n{mod.__doc__}"] + [f"{name}.{k}\n\n{v.__doc__}" for k, v in vars(mod).items()
                                                if callable(v) and v.__doc__ and not k.startswith("_")]
        docs.append(Document(text="\n\n".join(parts), source=f"doc:{name}", domain="docs", lang="en"))
    lit = []
    for i in range(10):  # play-like scenes: speaker names on their own short lines, stage directions
        words = prose(100 + i, 12).split()
        lines = [f"{['HAMLET.', 'HORATIO.'][j % 2]}\n" + " ".join(words[j * 6:(j + 1) * 6]) for j in range(20)]
        lit.append(Document(text=f"SCENE {i}.\n\n" + "\n\n".join(lines) + "\n\n[Exeunt.]", domain="literature"))
    from pretrain.data.record import write_jsonl

    write_jsonl(tmp_path / "c.jsonl.zst", code + docs + lit)
    stats = curate([tmp_path / "c.jsonl.zst"], tmp_path / "o", CurateConfig(), workers=1, progress=False)
    for d in ("code", "docs", "literature"):
        assert stats["domains"][d]["kept"] == stats["domains"][d]["documents_in"], (d, stats["reasons"])
    assert all(d.text for d in read_dir(tmp_path / "o" / "data"))


def test_cli_with_config(mixed_dir: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from pretrain.cli import app

    conf = tmp_path / "run.toml"
    conf.write_text('[data.curate]\nmax_record_bytes = 16384\nsteps = [{type = "normalize"}, '
                    '{type = "exact_dedup"}]\n')
    res = CliRunner().invoke(app, ["curate", str(mixed_dir), "--out", str(tmp_path / "o"), "--config", str(conf),
                                   "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "curation funnel" in res.output and "exact_dedup" in res.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["quarantined"] == 9 and stats["removed"] == 1
    bad = CliRunner().invoke(app, ["curate", str(mixed_dir), "--out", str(tmp_path / "p"), "--set",
                                   "data.curate.steps=[{type='bogus'}]"])
    assert bad.exit_code != 0
