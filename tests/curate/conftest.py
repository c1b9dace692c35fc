"""Shared fixtures: a small mixed input tree with good documents and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sys
from pathlib import Path

import pytest
import zstandard

sys.path.insert(0, str(Path(__file__).parent))  # curate_helpers

FIXTURES = Path(__file__).parent / "fixtures"

PROSE = ("The history of the river valley is long and varied. Farmers settled on the banks of the river "
         "and built small villages with wooden houses. They grew wheat and barley in the fields that "
         "stretched to the hills, and they traded grain with the towns along the coast. Over the "
         "centuries the villages became towns, and the towns became a city with markets, schools and a "
         "cathedral that still stands today.")

CODE = '''import math


def area(radius: float) -> float:
    """Area of a circle."""
    return math.pi * radius ** 2


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def tick(self) -> int:
        self.n += 1
        return self.n
'''


EXTRA = ("morning evening winter summer harbour station library orchard bridge school lighthouse garden "
         "mill fountain letter journey window kitchen mountain valley forest island meadow village story "
         "painter doctor sailor teacher baker student lantern candle basket ribbon pebble").split()


def prose(seed: int, sentences: int = 8) -> str:
    """A distinct English-looking paragraph: shuffled real words cut into sentences (no repeated 5-grams)."""
    rng = random.Random(seed)
    vocab = PROSE.replace(",", "").replace(".", "").split() + EXTRA
    out = []
    for _ in range(sentences):
        ws = rng.sample(vocab, 10)
        out.append(" ".join(ws).capitalize() + ".")
    return " ".join(out)


def write_jsonl(path: Path, records: list, compress: str = "") -> None:
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    if compress == "gz":
        path.write_bytes(gzip.compress(data))
    elif compress == "zst":
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)


@pytest.fixture(name="prose")
def prose_fixture():
    """The paragraph generator, for tests that build their own corpora."""
    return prose


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """HTML in three languages, code, prose, JSONL (plain/gz/zst), Parquet, and corrupt files.

    Bad records (each must be quarantined, not crash the run): an invalid-UTF-8 text file, a binary
    file, an empty file, a JSONL line with a NUL byte, a malformed JSONL line, a record without text,
    a huge line, and a truncated .jsonl.zst (its readable records are kept).
    """
    root = tmp_path / "raw"
    (root / "web").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "notes").mkdir()
    (root / "jsonl").mkdir()
    for lang in ("en", "de", "fr"):
        shutil.copy(FIXTURES / f"debian_reference_pr01.{lang}.html", root / "web" / f"pr01.{lang}.html")
    (root / "src" / "geometry.py").write_text(CODE)
    (root / "src" / "util.rs").write_text("fn main() {\n    let x = 40 + 2;\n    println!(\"{}\", x);\n}\n")
    (root / "notes" / "river.md").write_text("# River\n\n" + PROSE + "\n\n" + prose(1) + "\n")
    (root / "notes" / "copy.txt").write_text("# River\n\n" + PROSE + "\n\n" + prose(1) + "\n")  # exact dup
    (root / "notes" / "bad_utf8.txt").write_bytes(b"valid start \xff\xfe broken")
    (root / "notes" / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (root / "notes" / "empty.txt").write_bytes(b"")
    records = [{"text": prose(10 + i), "domain": "books", "source": f"book-{i}"} for i in range(6)]
    records.append('{"text": "broken json line')
    records.append({"text": "nul \u0000 byte inside the text", "domain": "books"})
    records.append({"title": "no text field"})
    records.append({"text": "x" * 20000, "domain": "books"})  # over max_record_bytes (16384) in the tests
    write_jsonl(root / "jsonl" / "books.jsonl", records)
    write_jsonl(root / "jsonl" / "more.jsonl.gz", [{"text": prose(30 + i)} for i in range(3)], "gz")
    # four zstd frames of ten records (as chunked writers produce); the cut falls inside the third
    good = b"".join(zstandard.ZstdCompressor().compress(
        "".join(json.dumps({"text": prose(50 + i)}) + "\n" for i in range(f * 10, f * 10 + 10)).encode())
        for f in range(4))
    (root / "jsonl" / "cut.jsonl.zst").write_bytes(good[: len(good) * 2 // 3])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [prose(70 + i) for i in range(4)] + [None], "domain": ["wiki"] * 5}),
                   root / "jsonl" / "wiki.parquet")
    return root


PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(scope="session")
def plugin_steps() -> str:
    """Make tests/curate/plugins importable here, in spawned workers and in Ray workers."""
    import os
    import sys

    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(PLUGINS) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), *[p for p in paths if p]])
    return "c1_test_steps"


@pytest.fixture(scope="session")
def ray_local(plugin_steps):
    """One local Ray instance (2 CPUs) for the whole session; the executor reuses it."""
    import os

    ray = pytest.importorskip("ray", reason="Ray is installed by `make install` (pretrain[ray])")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    yield ray
    ray.shutdown()
