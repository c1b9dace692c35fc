"""Where a trained document came from: its record in the files tokenize read, the raw input behind it,
and what curation did with it.

The token shards keep each document's record id and ``source`` (pretrain.data.shards). The record
itself, found by id in the files tokenize read (named by the tokenize manifest, else ``<run>/curated``),
adds ``meta.input`` (the raw file and line or byte offset curation read it from; records of a JSONL
input carry their own upstream ``source`` besides) and, for web records, the WARC record id, URL and
capture date. Curation's ``stats.json`` names the steps every kept document passed; a removed
document is in ``curated/removed/`` with the step that removed it and why (a duplicate names the
document kept in its place).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from pretrain.data.record import open_bytes

_ID = re.compile(rb'"id":\s*"([^"]{1,64})"')
_SOURCE = re.compile(r"^(?P<path>.*?)(?::(?P<line>\d+)|@(?P<offset>\d+))?$")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst")


def record_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory]
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.endswith(JSONL_SUFFIXES))


def find_records(files: Iterable[Path], ids: set[str]) -> dict[str, tuple[Path, int, dict]]:
    """{id: (file, 1-based line, record)} for the wanted ids (one pass; only matching lines are parsed)."""
    found: dict[str, tuple[Path, int, dict]] = {}
    if not ids:
        return found
    for f in files:
        with open_bytes(f, "rb") as fh:
            for n, line in enumerate(fh, 1):
                m = _ID.search(line)  # the first "id" key: a record's own (JSON escapes quotes in text)
                if m is None or m.group(1).decode("utf-8", "replace") not in ids:
                    continue
                rec = json.loads(line)
                found.setdefault(str(rec["id"]), (f, n, rec))
        if len(found) == len(ids):
            break
    return found


def parse_source(source: str, cwd: str | None = None) -> dict:
    """``path:line`` / ``path@offset`` / a URL -> {"path": absolute, "line" | "offset": int} or {"url"}."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", source) and not source.startswith("file://"):
        return {"url": source}
    m = _SOURCE.match(source)
    path = m.group("path") if m else source
    out: dict = {}
    p = Path(path)
    if not p.is_absolute():
        base = Path(cwd) if cwd else Path.cwd()
        p = base / p
    out["path"] = str(p.resolve()) if p.exists() else path
    out["exists"] = p.exists()
    if m and m.group("line"):
        out["line"] = int(m.group("line"))
    if m and m.group("offset"):
        out["offset"] = int(m.group("offset"))
    return out


def _manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


class Origins:
    """Origins of documents of one run (its token directory, and the record files tokenize read)."""

    def __init__(self, run: Path, tokens_dir: Path):
        self.run = run
        tok = _manifest(tokens_dir / "manifest.json")
        inputs = [Path(i["path"]) for i in tok.get("inputs", []) if i.get("role") == "records"] or [run / "curated" / "data"]
        self.record_dirs = [p for p in inputs if p.exists()]
        self.curated = next((p.parent for p in self.record_dirs if (p.parent / "stats.json").is_file()), None)
        cur = _manifest(self.curated / "manifest.json") if self.curated else {}
        self.cwd = cur.get("cwd")
        stats = _manifest(self.curated / "stats.json") if self.curated else {}
        self.steps = [s.get("name") for s in stats.get("steps", []) if isinstance(s, dict)]

    def of(self, docs: dict[str, str]) -> dict[str, dict]:
        """{id: origin} for {id: the shard's source string}."""
        files = [f for d in self.record_dirs for f in record_files(d)]
        records = find_records(files, set(docs))
        return {i: self._origin(src, records.get(i)) for i, src in docs.items()}

    def _origin(self, shard_source: str, found: tuple[Path, int, dict] | None) -> dict:
        meta = (found[2].get("meta") or {}) if found else {}
        raw = parse_source(str(meta.get("input") or shard_source), self.cwd)
        if not raw.get("exists", True) and found and not meta.get("input"):
            # a record read straight from a JSONL file (no curation): that file and line are its raw input
            raw = {"path": str(found[0].resolve()), "exists": True, "line": found[1]}
        out: dict = {"record_source": shard_source, "raw": raw}
        if meta.get("url"):
            out["raw"].update({k: meta[k] for k in ("url", "date", "warc_record_id") if meta.get(k)})
        out["source"] = raw.get("url") or raw["path"]
        if found:
            out["record"] = {"file": str(found[0].resolve()), "line": found[1]}
        if self.steps:
            out["curation"] = {"passed": self.steps}
        return out

    def removed(self, key: str) -> dict | None:
        """A document curation removed or quarantined, by id, URL or raw path: {how, step, reason, ...}."""
        if self.curated is None:
            return None
        for kind in ("removed", "quarantine"):
            d = self.curated / kind
            if not d.is_dir():
                continue
            for f in record_files(d):
                with open_bytes(f, "rb") as fh:
                    for n, line in enumerate(fh, 1):
                        if key.encode() not in line:
                            continue
                        rec = json.loads(line)
                        meta = rec.get("meta") or {}
                        if key not in (rec.get("id"), rec.get("source"), meta.get("url"), meta.get("input")):
                            continue
                        return {"kind": kind, "id": rec.get("id"), "removed_by": meta.get("removed_by", "read"),
                                "reason": meta.get("reason"), "detail": meta.get("reason_detail"),
                                "duplicate_of": meta.get("duplicate_of"), "record": {"file": str(f.resolve()), "line": n},
                                "source": (parse_source(str(meta.get("input") or rec.get("source", "")), self.cwd)
                                           .get("path") or meta.get("url"))}
        return None
