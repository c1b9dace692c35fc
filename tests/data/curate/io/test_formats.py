"""Input formats as a registry: one class per format, found by suffix; a new one needs no other edit."""

from __future__ import annotations

import csv

import pytest

from pretrain.data.curate.config import CurateConfig
from pretrain.data.curate.execution.runner import curate
from pretrain.data.curate.io.formats import base
from pretrain.data.curate.io.formats.base import InputFormat, Quarantined, format_of, formats, register_format
from pretrain.data.record import Document, read_dir


@pytest.mark.parametrize("name, fmt", [
    ("a.jsonl", "jsonl"), ("a.JSONL.ZST", "jsonl"), ("a.ndjson", "jsonl"), ("a.json.gz", "jsonl"),
    ("a.parquet", "parquet"), ("data-00000-of-00001.arrow", "arrow"), ("a.html", "html"), ("a.htm", "html"),
    ("CC-MAIN-1.warc.gz", "warc"), ("a.wet", "warc"), ("a.py", "text"), ("README", "text"), ("a.json", "text"),
])
def test_each_file_finds_its_format_by_suffix(name, fmt):
    assert format_of(name).name == fmt
    assert len({type(f).__module__ for f in formats().values()}) == len(formats())


@pytest.fixture
def csv_format():
    @register_format("csv_test")
    class Csv(InputFormat):
        suffixes = (".csv",)
        sharding = "file"

        def read_records(self, path, shard, text_field, domain, max_bytes):
            with open(path, newline="", encoding="utf-8") as f:
                for row, rec in enumerate(csv.DictReader(f)):
                    src = f"{path}@{row}"
                    if not rec.get(text_field):
                        yield Quarantined(src, f"missing text field {text_field!r}", domain)
                    else:
                        yield Document(text=rec[text_field], source=src, domain=domain)

    yield Csv
    base.FORMATS.remove("csv_test")


def test_a_registered_format_is_curated_with_nothing_lost(tmp_path, csv_format):
    rows = [{"text": f"A short line of prose number {i} about rivers, mills and the sea."} for i in range(5)]
    rows.append({"text": ""})
    src = tmp_path / "in" / "table.csv"
    src.parent.mkdir()
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["text"])
        w.writeheader()
        w.writerows(rows)
    cfg = CurateConfig(workers=1, steps=[{"type": "normalize"}, {"type": "exact_dedup"}])
    stats = curate([src.parent], tmp_path / "out", cfg, workers=1, progress=False)
    assert stats["documents_in"] == 6 and stats["quarantined"] == 1
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    kept = read_dir(tmp_path / "out" / "data")
    assert sorted(d.source for d in kept) == [f"{src}@{i}" for i in range(5)]
    with pytest.raises(ValueError, match="registered twice"):
        register_format("jsonl")(csv_format)


def test_readers_and_inputs_never_switch_on_a_format_name():
    from pathlib import Path

    import pretrain.data.curate.io.readers as readers

    root = Path(readers.__file__).parents[1]  # pretrain/data/curate
    for name in ("io/readers.py", "io/inputs.py", "execution/runner.py"):
        text = (root / name).read_text()
        assert "file_format" not in text
        for fmt in formats():
            assert f'"{fmt}"' not in text, f"{name} names the format {fmt!r}"
