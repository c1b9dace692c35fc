"""``pretrain trace``: from a step to its documents, and from a document to the steps that trained on it.

Both directions recompute the loader's batches from the run's step log (pretrain.lineage.replay), so
they agree with each other and with what the trainer consumed, across resumes, world sizes, stages,
mixtures, FIM and epochs. A document is named by its record id, by the URL of its web page, or by
its raw input (a path, or path:line / path@offset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain.data.shards import ShardSet
from pretrain.lineage.origin import Origins
from pretrain.lineage.replay import Occurrence, Replay, batches, seek
from pretrain.lineage.steplog import LineageError


def _tokens_dir(replay: Replay) -> Path:
    header = next(iter(replay.log.segments.values()))
    return Path(next(iter(header["shards"].values()))).parent.parent


def _row(o: Occurrence, world: int) -> dict:
    return {"micro_batch": o.micro // world, "global_micro_batch": o.micro, "row": o.row, "rank": o.micro % world,
            "first": o.first, "last": o.last, "tokens": o.tokens, "epoch": o.epoch}


def trace_step(run: str | Path, step: int, origins: bool = True) -> dict:
    """The documents of optimizer step ``step``: one entry per (document, row), in batch order."""
    replay = Replay(run)
    occ, world = replay.step(step)
    docs = []
    for o in occ:
        src = replay.shard_set(o.shard).doc_source(o.doc)
        docs.append({"id": src.id, "domain": o.domain, "record_source": src.source, "shard": o.shard,
                     "index": o.index, **_row(o, world)})
    if origins:
        found = Origins(Path(run), _tokens_dir(replay)).of({d["id"]: d["record_source"] for d in docs})
        for d in docs:
            o = found[d["id"]]
            d["source"] = o["source"]
            d["origin"] = o
    return {"step": step, "world_size": world, "trained": step not in replay.log.skips, "documents": docs}


def _find(shard_sets: list[ShardSet], key: str) -> tuple[ShardSet, int] | None:
    """A document by record id, or by a source string its shard index holds (exact match)."""
    kb = key.encode("ascii", "replace")[:16]
    for sh in shard_sets:
        base = 0
        for shard in sh.shards:
            hit = np.nonzero(np.asarray(shard.index["id"]) == kb)[0] if len(key) == 16 else []
            if len(hit):
                return sh, base + int(hit[0])
            base += shard.header.num_docs
    want = key.encode("utf-8", "surrogatepass")
    for sh in shard_sets:  # a find in each shard's .src bytes, then the exact match of that document
        base = 0
        for shard in sh.shards:
            data = shard.src_path.read_bytes()
            offs = np.asarray(shard.index["src_off"])
            at = data.find(want)
            while at >= 0:
                j = int(np.searchsorted(offs, at, side="right")) - 1
                if shard.source(j).source == key:
                    return sh, base + j
                at = data.find(want, at + 1)
            base += shard.header.num_docs
    return None


def _covers(stream, doc: int, a: tuple, b: tuple, inverse: dict) -> list[int]:
    """Epochs in which the stream span [a, b) holds tokens of ``doc``."""
    if not a < b:  # the step drew no row of this domain
        return []
    n = len(stream.docs)
    out = []
    for e in range(a[0], b[0] + 1):
        if e not in inverse:
            inverse.clear()
            inverse[e] = int(np.nonzero(stream.order(e) == doc)[0][0])
        p = inverse[e]
        end = (e, p + 1, 0) if p + 1 < n else (e + 1, 0, 0)
        if a < end and b > (e, p, 0):
            out.append(e)
    return out


def _scan(replay: Replay, domain: str, doc_dir: str, doc: int) -> list[tuple[int, str, dict]]:
    """(step, segment, loader state before it) of every step whose batches hold tokens of the document;
    checks the recomputed positions against those logged at checkpoints on the way."""
    hits = []
    for first, last, segment, start in replay.segments():
        loader = replay.loader(segment)
        stream = loader.streams.get(domain)
        if stream is None or str(Path(stream.shards.dir).resolve()) != doc_dir:
            continue
        seek(loader, start)
        inverse: dict = {}
        for s in range(first, last + 1):
            a = stream.position()
            state = loader.state_dict()
            replay.advance(loader, s)
            if _covers(stream, doc, a, stream.position(), inverse):
                hits.append((s, segment, state))
            replay.check(s, loader)
    return hits


def _checkpoints(run: Path, first_step: int | None) -> tuple[list[str], str | None]:
    import json

    rows = []
    for d in sorted((run / "checkpoints").glob("*")):
        meta = d / "meta.json"
        if meta.is_file():
            rows.append((int(json.loads(meta.read_text())["step"]), d.name))
    rows.sort()
    if first_step is None:
        return [], (rows[-1][1] if rows else None)
    containing = [n for s, n in rows if s >= first_step]
    before = [n for s, n in rows if s < first_step]
    return containing, (before[-1] if before else None)


def trace_doc(run: str | Path, key: str) -> dict:
    """Every step whose batches held tokens of the document, its origin and the checkpoints holding it;
    or, for a document never trained on, why."""
    run = Path(run)
    replay = Replay(run)
    tokens = _tokens_dir(replay)
    origins = Origins(run, tokens)
    train = [ShardSet(p) for p in sorted({p for h in replay.log.segments.values() for p in h["shards"].values()})]
    found = _find(train, key)
    if found is None:
        for rid in _ids_for(origins, key):
            found = _find(train, rid)
            if found:
                break
    if found is None:
        return _never(run, replay, origins, tokens, key)
    sh, doc = found
    src = sh.doc_source(doc)
    steps = []
    for s, segment, state in _scan(replay, sh.domain, str(Path(sh.dir).resolve()), doc):
        loader = replay.loader(segment)
        loader.load_state_dict(state)
        loader.set_progress(replay.log.progress_of(s))
        micro, world, _ = replay.log.plan_of(s)
        rows = [_row(o, world) for o in batches(loader, s, micro) if o.domain == sh.domain and o.doc == doc]
        steps.append({"step": s, "trained": s not in replay.log.skips, "epoch": rows[0]["epoch"],
                      "tokens": sum(r["tokens"] for r in rows), "rows": rows})
    origin = origins.of({src.id: src.source})[src.id]
    trained = [s["step"] for s in steps if s["trained"]]
    containing, before = _checkpoints(run, trained[0] if trained else None)
    out = {"id": src.id, "domain": sh.domain, "source": origin["source"], "origin": origin, "steps": steps,
           "tokens_trained": sum(s["tokens"] for s in steps if s["trained"]), "checkpoints": containing,
           "last_checkpoint_before": before if trained else None}
    if not trained:
        out["never_trained"] = ("beyond the steps run: the run's batches never reached it "
                                f"(steps 1..{replay.log.last_step})" if not steps else "its steps were skipped")
    return out


def _ids_for(origins: Origins, key: str) -> list[str]:
    """Record ids whose URL or raw input matches ``key`` (a URL, a path, path:line)."""
    import json

    from pretrain.data.record import open_bytes
    from pretrain.lineage.origin import parse_source, record_files

    want = key.encode()
    ids = []
    for d in origins.record_dirs:
        for f in record_files(d):
            with open_bytes(f, "rb") as fh:
                for line in fh:
                    if want not in line and Path(key).name.encode() not in line:
                        continue
                    rec = json.loads(line)
                    meta = rec.get("meta") or {}
                    raw = parse_source(str(meta.get("input") or rec.get("source", "")), origins.cwd)
                    here = raw.get("path", "")
                    where = {meta.get("url"), rec.get("source"), meta.get("input"), here,
                             f"{here}:{raw.get('line')}", f"{here}@{raw.get('offset')}"}
                    if key in where:
                        ids.append(str(rec["id"]))
    return ids


def _never(run: Path, replay: Replay, origins: Origins, tokens: Path, key: str) -> dict:
    """A document that is in no training shard: held out, removed or quarantined by curation, or unknown."""
    val = tokens / "val"
    if val.is_dir():
        shard_sets = [ShardSet(d) for d in sorted(val.iterdir()) if d.is_dir() and any(d.glob("shard_*.bin"))]
        hit = _find(shard_sets, key) or next((h for rid in _ids_for(origins, key) if (h := _find(shard_sets, rid))), None)
        if hit:
            src = hit[0].doc_source(hit[1])
            origin = origins.of({src.id: src.source})[src.id]
            return {"id": src.id, "domain": hit[0].domain, "source": origin["source"], "origin": origin, "steps": [],
                    "tokens_trained": 0, "checkpoints": [], "never_trained": "held out for validation (tokens/val)"}
    gone = origins.removed(key)
    if gone:
        why = f"removed by curation step '{gone['removed_by']}': {gone['reason']}"
        if gone.get("duplicate_of"):
            why += f" (a duplicate of document {gone['duplicate_of']}, which was kept)"
        if gone["kind"] == "quarantine":
            why = f"quarantined by curation: {gone['reason']}"
        return {"id": gone["id"], "source": gone["source"], "steps": [], "tokens_trained": 0, "checkpoints": [],
                "never_trained": why, "removed": gone}
    raise LineageError(f"unknown document {key!r}: not a record id, URL or input path of {run} "
                       f"(searched the token shards under {tokens} and the curated records)")
