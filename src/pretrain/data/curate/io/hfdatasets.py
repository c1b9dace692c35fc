"""Hugging Face ``datasets`` inputs: folders written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
and the Hub's Parquet layout (a dataset repository: a README.md dataset card plus Parquet files), local or
at an fsspec URL (``hf://datasets/<owner>/<name>`` through huggingface_hub's file system).

``dataset_files(dir)`` says which files of such a folder hold the records (the ``.arrow`` files that
``state.json`` lists, for every split of a DatasetDict; the Parquet files of a Hub layout) so the card,
``dataset_info.json`` and ``state.json`` are not curated as documents; None for any other folder.
``ArrowFile`` reads one ``.arrow`` file (Arrow IPC stream, as ``datasets`` writes it) with the interface
the Parquet reader uses, so the two share sharding and reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

from pretrain.data.curate.io import storage

ARROW_SUFFIX = ".arrow"


def _read_json(path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_to_disk_files(d) -> list | None:
    if (d / "dataset_dict.json").is_file():
        splits = (_read_json(d / "dataset_dict.json") or {}).get("splits") or []
        out = []
        for split in splits:
            out += _save_to_disk_files(d / str(split)) or []
        return out
    state = _read_json(d / "state.json") if (d / "state.json").is_file() else None
    if state is None or not isinstance(state.get("_data_files"), list):
        return None
    return [d / str(f["filename"]) for f in state["_data_files"] if isinstance(f, dict) and f.get("filename")]


def _hub_parquet_files(d) -> list | None:
    card = d / "README.md"
    if not card.is_file():
        return None
    try:
        head = card.read_text(encoding="utf-8")[:4]
    except (OSError, UnicodeDecodeError):
        return None
    if not head.startswith("---"):  # a dataset card starts with its YAML metadata
        return None
    files = sorted((f for f in d.rglob("*.parquet") if f.is_file()
                    and not any(part.startswith(".") for part in f.relative_to(d).parts)), key=str)
    return files or None


def dataset_files(d) -> list | None:
    """The record files of a ``save_to_disk`` folder or a Hub Parquet layout at ``d``, else None."""
    return _save_to_disk_files(d) or _hub_parquet_files(d)


class ArrowFile:
    """One ``.arrow`` file of a saved dataset, read as the Parquet reader reads a ParquetFile:
    ``schema_arrow.names``, ``metadata.num_rows`` and ``iter_batches``."""

    def __init__(self, path):
        import pyarrow as pa

        if storage.is_remote(path):
            with storage.open_binary(path) as fh:
                self.table = pa.ipc.open_stream(pa.py_buffer(fh.read())).read_all()
        else:
            source = pa.memory_map(str(path), "r")  # zero-copy: datasets' files can be large
            try:
                self.table = pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:  # the IPC file format (with a footer) also occurs
                self.table = pa.ipc.open_file(source).read_all()
        self.schema_arrow = self.table.schema
        self.metadata = SimpleNamespace(num_rows=self.table.num_rows)

    def iter_batches(self, batch_size: int = 1024, columns: list[str] | None = None) -> Iterator:
        table = self.table.select(columns) if columns else self.table
        return iter(table.to_batches(max_chunksize=batch_size))


__all__ = ["ARROW_SUFFIX", "ArrowFile", "dataset_files"]
