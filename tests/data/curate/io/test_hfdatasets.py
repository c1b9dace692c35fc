"""`datasets` inputs: save_to_disk folders (Dataset and DatasetDict) and the Hub's Parquet layout are
curated and tokenized with every row counted, and without their metadata files read as documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretrain.data.curate import curate
from pretrain.data.curate.config import CurateConfig

datasets = pytest.importorskip("datasets")

WORDS = "the model reads a long document about data and training every day with care".split()


def _rows(n: int, offset: int = 0) -> dict:
    text = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(40 + i)) + f" number {i + offset}." for i in range(n)]
    return {"text": text, "domain": ["code" if i % 4 == 0 else "prose" for i in range(n)]}


def _stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def test_save_to_disk_folder_curates_every_row(tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict(_rows(30)).save_to_disk(str(folder), num_shards=3)
    stats = curate([folder], tmp_path / "out", CurateConfig(workers=1), workers=1, progress=False)
    assert stats["documents_in"] == 30  # not state.json / dataset_info.json as extra documents
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    per_domain = {d: v["documents_in"] for d, v in _stats(tmp_path / "out")["domains"].items()}
    assert per_domain == {"code": 8, "prose": 22}  # the rows' domain column


def test_dataset_dict_reads_every_split_and_hub_parquet_layout_skips_the_card(tmp_path):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(_rows(12)),
                               "validation": datasets.Dataset.from_dict(_rows(5, 100))})
    dd.save_to_disk(str(tmp_path / "dict"))
    assert curate([tmp_path / "dict"], tmp_path / "o1", CurateConfig(workers=1), workers=1,
                  progress=False)["documents_in"] == 17

    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    (hub / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files: data/*.parquet\n---\n# Card\n")
    datasets.Dataset.from_dict(_rows(9)).to_parquet(str(hub / "data" / "train-00000-of-00001.parquet"))
    (hub / ".gitattributes").write_text("*.parquet filter=lfs\n")
    stats = curate([hub], tmp_path / "o2", CurateConfig(workers=1), workers=1, progress=False)
    assert stats["documents_in"] == 9  # the card is not a document


def test_a_damaged_arrow_file_is_quarantined_with_its_name(tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict(_rows(6)).save_to_disk(str(folder), num_shards=2)
    bad = sorted(folder.glob("*.arrow"))[1]
    bad.write_bytes(b"not arrow at all")
    stats = curate([folder], tmp_path / "out", CurateConfig(workers=1), workers=1, progress=False)
    assert stats["quarantined"] == 1 and stats["documents_in"] == 4
    from pretrain.data.record import read_dir

    (q,) = list(read_dir(tmp_path / "out" / "quarantine"))
    assert bad.name in q.source and "unreadable Arrow" in q.meta["reason"]


def test_tokenize_reads_a_save_to_disk_folder(tmp_path):
    from pretrain.data.tokenize import read_documents

    folder = tmp_path / "saved"
    datasets.Dataset.from_dict(_rows(7)).save_to_disk(str(folder), num_shards=2)
    docs = list(read_documents([folder]))
    assert len(docs) == 7 and {d.domain for d in docs} == {"code", "prose"}
    assert docs[0].text.startswith("the model")
