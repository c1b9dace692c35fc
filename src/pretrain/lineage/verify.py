"""``pretrain verify`` and ``pretrain diff``: recompute a run's manifest chain, and compare two runs.

The chain is every manifest reachable from the run directory's stage directories (curated/,
tokenizer/, tokens/, checkpoints/, eval/) through their ``consumed`` links, so shards or a tokenizer
kept outside the run are followed too. Verification rehashes each manifest's outputs and inputs (and
each listed checkpoint's files against its meta.json), checks that every consumed manifest is the one
that was consumed, and reports one line per broken link, naming the file and the stage.
"""

from __future__ import annotations

import json
from pathlib import Path

from pretrain.hashing import sha256_file
from pretrain.lineage.manifest import MANIFEST, read_manifest
from pretrain.lineage.steplog import LineageError

STAGES = ("curate", "tokenizer", "tokenize", "train", "eval")
_PLACES = ("curated", "tokenizer", "tokens", "checkpoints", "eval")


def chain(run: str | Path) -> list[tuple[Path, dict]]:
    """(path, manifest) of every stage on the run's chain, upstream first."""
    run = Path(run)
    todo = [run / p / MANIFEST for p in _PLACES if (run / p / MANIFEST).is_file()]
    seen: dict[Path, dict] = {}
    while todo:
        p = todo.pop().resolve()
        if p in seen or not p.is_file():
            continue
        seen[p] = read_manifest(p)
        todo += [Path(c["path"]) for c in seen[p].get("consumed", [])]
    if not seen:
        raise LineageError(f"{run}: no stage manifests (no manifest.json under {', '.join(_PLACES)}: no stage has "
                           "written into it, or a version of pretrain without lineage did)")
    order = {s: i for i, s in enumerate(STAGES)}
    return sorted(seen.items(), key=lambda kv: (order.get(kv[1].get("stage"), 99), str(kv[0])))


def _check_files(root: Path, files: dict, stage: str, what: str, where: Path) -> list[str]:
    out = []
    for rel, h in sorted(files.items()):
        f = root / rel
        if h.get("sha256") is None:  # unreadable when the stage ran (and quarantined by it): nothing to check
            continue
        if not f.is_file():
            out.append(f"{f}: missing ({what} of stage {stage}, {where})")
        elif f.stat().st_size != h["bytes"] or sha256_file(f) != h["sha256"]:
            out.append(f"{f}: content changed since stage {stage} recorded it ({what}, {where})")
    return out


def _check_checkpoint(meta_path: Path, stage: str) -> list[str]:
    """Every file of a checkpoint against the SHA-256 its meta.json holds."""
    if not meta_path.is_file():
        return []
    meta = json.loads(meta_path.read_text())
    out = []
    for rel, digest in sorted(meta.get("sha256", {}).items()):
        f = meta_path.parent / rel
        if not f.is_file():
            out.append(f"{f}: missing (checkpoint file of stage {stage})")
        elif sha256_file(f) != digest:
            out.append(f"{f}: content changed since stage {stage} saved it (checkpoint {meta_path.parent.name})")
    return out


def _check_prefix(entry: dict, stage: str, where: Path) -> list[str]:
    f = Path(entry["path"])
    if not f.is_file():
        return [f"{f}: missing (step log of stage {stage}, {where})"]
    import hashlib

    with open(f, "rb") as fh:
        digest = hashlib.sha256(fh.read(int(entry["bytes"]))).hexdigest()
    return [] if digest == entry["sha256"] else [f"{f}: content changed since stage {stage} recorded it ({where})"]


def check_link(path: Path, m: dict) -> list[str]:
    """The broken links of one manifest: its outputs, inputs, consumed manifests (and checkpoints)."""
    stage = m.get("stage", "?")
    broken = _check_files(path.parent, m.get("outputs", {}), stage, "output", path)
    for entry in m.get("inputs", []):
        broken += _check_files(Path(entry["root"]), entry.get("files", {}), stage, f"{entry.get('role', 'input')} input",
                               path)
    for c in m.get("consumed", []):
        f = Path(c["path"])
        if not f.is_file():
            broken.append(f"{f}: missing (manifest consumed by stage {stage}, {path})")
        elif sha256_file(f) != c["sha256"]:
            broken.append(f"{f}: manifest consumed by stage {stage} changed since ({path})")
    if stage == "train":
        for rel in m.get("outputs", {}):
            broken += _check_checkpoint(path.parent / rel, stage)
        if m.get("step_log"):
            broken += _check_prefix(m["step_log"], stage, path)
    return broken


def verify(run: str | Path) -> tuple[list[str], list[tuple[Path, dict]]]:
    """(broken links, the chain checked): an empty first list means every hash still holds."""
    links = chain(run)
    return [line for path, m in links for line in check_link(path, m)], links


def _flat(d, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _differences(a: dict, b: dict) -> list[str]:
    out = []
    if a.get("code") != b.get("code"):
        ca, cb = a.get("code") or {}, b.get("code") or {}
        out.append(f"code version: {ca.get('package')} {ca.get('git')} -> {cb.get('package')} {cb.get('git')}")
    if a.get("seed") != b.get("seed"):
        out.append(f"seed: {a.get('seed')} -> {b.get('seed')}")
    fa, fb = _flat(a.get("config", {})), _flat(b.get("config", {}))
    for k in sorted(set(fa) | set(fb)):
        if fa.get(k) != fb.get(k) and not k.endswith("seed"):
            out.append(f"config {k}: {fa.get(k)!r} -> {fb.get(k)!r}")
        elif fa.get(k) != fb.get(k):
            out.append(f"config {k} (a seed): {fa.get(k)!r} -> {fb.get(k)!r}")
    ia = {(e.get("role"), r): h["sha256"] for e in a.get("inputs", []) for r, h in e.get("files", {}).items()}
    ib = {(e.get("role"), r): h["sha256"] for e in b.get("inputs", []) for r, h in e.get("files", {}).items()}
    for k in sorted(set(ia) | set(ib), key=str):
        if ia.get(k) != ib.get(k):
            out.append(f"input {k[0]} {k[1]}: " + ("only in A" if k not in ib else "only in B" if k not in ia else "differs"))
    return out


def diff(run_a: str | Path, run_b: str | Path) -> dict:
    """The first stage where two runs differ and what differs there (config keys, seed, code, inputs,
    and otherwise outputs)."""
    a = {m.get("stage"): m for _, m in chain(run_a)}
    b = {m.get("stage"): m for _, m in chain(run_b)}
    for stage in [s for s in STAGES if s in a or s in b]:
        if stage not in a or stage not in b:
            return {"stage": stage, "differences": [f"stage {stage} only in {'A' if stage in a else 'B'}"]}
        found = _differences(a[stage], b[stage])
        if not found and a[stage].get("outputs") != b[stage].get("outputs"):
            oa, ob = a[stage]["outputs"], b[stage].get("outputs", {})
            found = [f"output {k}: differs" for k in sorted(set(oa) | set(ob)) if oa.get(k) != ob.get(k)]
        if found:
            return {"stage": stage, "differences": found}
    return {"stage": None, "differences": []}
