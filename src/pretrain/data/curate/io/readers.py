"""Input sharding and reading: every input record becomes a Document or a quarantine record.

Each file format is one class in :mod:`.formats`, found by the file name's suffix: JSON lines
(``.jsonl`` / ``.jsonl.gz`` / ``.jsonl.zst`` / ``.ndjson``), ``.parquet``, ``.arrow`` (a ``datasets``
save_to_disk file: :mod:`.hfdatasets`), ``.html`` / ``.htm`` (domain 'web' and ``meta.format = 'html'``),
``.warc`` / ``.warc.gz`` / ``.wet`` / ``.wet.gz`` (see :mod:`pretrain.data.curate.io.warc`), and anything
else read as one text document per file (source code, Markdown, plain text). This module plans the
shards by each format's ``sharding`` and reads a shard through its format; it never switches on a
format's name. Inputs may be local paths or fsspec URLs (:mod:`.storage`). Reading never raises on bad
data: invalid UTF-8, binary or empty files, NUL bytes, malformed JSON lines, records without the text
field, lines over the size limit, truncated compressed streams, symlink loops, broken symlinks, special
files (FIFOs, sockets, devices), unreadable and vanished files each yield a :class:`Quarantined` naming
file, line and reason, with the record's bytes as its payload (see :mod:`.payload`), and reading goes on
with the next record where that is possible. Every read is bounded: by the size a file had when opened,
and lines by ``max_bytes``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

from pretrain.data.curate.io import storage
from pretrain.data.curate.io.formats import Cuts, InputFormat, Quarantined, Shard, fallback_format, format_of
from pretrain.data.curate.io.inputs import expand_inputs, input_problem, link_problem
from pretrain.data.curate.io.lines import iter_lines
from pretrain.data.record import Document


def domain_for(path: str | Path, globs: dict[str, str], default: str = "prose") -> str:
    """First glob (in the mapping's order) matching the file name or its path; else ``default``."""
    full = path.as_posix() if isinstance(path, Path) else str(path)
    name = full.rstrip("/").rsplit("/", 1)[-1]
    for pattern, domain in globs.items():
        if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(full, pattern):
            return domain
    return default


def is_record_file(path: str | Path) -> bool:
    """A readable file its format cuts into record ranges (whose cuts the planner computes in parallel)."""
    return format_of(path).sharding == "records" and not input_problem(path)


def record_cuts(path: Path, max_bytes: int, records_per_shard: int, bytes_per_shard: int) -> Cuts | None:
    """Shards of a record file (see its format's ``cuts``): a new one every ``records_per_shard`` records
    or ``bytes_per_shard`` bytes, whichever comes first; None when the file cannot be read (it becomes
    one shard that quarantines it at read time). No shard reads its file from line 1."""
    try:
        return format_of(path).cuts(path, max_bytes, records_per_shard, bytes_per_shard)
    except Exception:  # noqa: BLE001 - anything unreadable becomes one shard that quarantines at read time
        return None


def _record_shards(f: Path, first: int, got: Cuts | None) -> list[Shard]:
    """The record shards of one file from its cuts (one shard when it has none, or one range)."""
    if got is None or len(got.starts) <= 2:
        return [Shard(first, "records", [str(f)], 0, -1, read_from=got.read_from if got else "")]
    st, last, shards = got.starts, got.starts[-1], []
    for a, b, o, sk in zip(st[:-1], st[1:], got.offsets[:-1], got.skips[:-1], strict=True):
        shards.append(Shard(first + len(shards), "records", [str(f)], a, -1 if b == last else b, o, sk, got.read_from))
    return shards


def plan_shards(files: list[Path], records_per_shard: int, files_per_shard: int, max_bytes: int,
                bytes_per_shard: int = 1 << 62, cuts: dict | None = None) -> list[Shard]:
    """Cut the inputs into shards, independently of the number of workers (so outputs do not depend on it).
    ``cuts``: :func:`record_cuts` of the record files, already computed (in parallel, and re-chunked).
    A file that cannot be opened is grouped with the whole-file documents, which quarantine it."""
    shards: list[Shard] = []
    loose: list[str] = []

    def flush() -> None:
        while loose:
            shards.append(Shard(len(shards), "files", loose[:files_per_shard]))
            del loose[:files_per_shard]

    for f in files:
        sharding = format_of(f).sharding
        if sharding != "files" and input_problem(f):  # read as a whole file, which quarantines it
            sharding = "files"
        if sharding == "file":
            flush()
            shards.append(Shard(len(shards), "records", [str(f)], 0, -1))
        elif sharding == "records":
            flush()
            got = cuts[str(f)] if cuts and str(f) in cuts else record_cuts(
                f, max_bytes, records_per_shard, bytes_per_shard)
            shards.extend(_record_shards(f, len(shards), got))
        else:
            loose.append(str(f))
            if len(loose) >= files_per_shard:
                flush()
    flush()
    return shards


def read_shard(shard: Shard, text_field: str, globs: dict[str, str], max_bytes: int,
               default_domain: str = "prose") -> Iterator[Document | Quarantined]:
    if shard.kind == "records":
        path = storage.as_path(shard.files[0])
        fmt: InputFormat = format_of(path)
        yield from fmt.read_records(path, shard, text_field, domain_for(path, globs, default="default"), max_bytes)
        return
    for name in shard.files:
        path = storage.as_path(name)
        fmt = format_of(path)
        if fmt.sharding != "files":  # a record file that could not be opened when planned: quarantined whole
            fmt = fallback_format()
        yield fmt.read_document(path, domain_for(path, globs, default_domain), max_bytes)


__all__ = ["Cuts", "Quarantined", "Shard", "domain_for", "expand_inputs", "input_problem", "is_record_file",
           "iter_lines", "link_problem", "plan_shards", "read_shard", "record_cuts"]
