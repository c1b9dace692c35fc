"""Shared fixtures: a small mixed input tree with good documents and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest
import zstandard

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


PLUGINS = FIXTURES / "plugins"


@pytest.fixture(scope="session")
def plugin_steps() -> str:
    """Make tests/data/curate/fixtures/plugins importable here, in spawned workers and in Ray workers."""
    import os
    import sys

    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(PLUGINS) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), *[p for p in paths if p]])
    return "c1_test_steps"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> str:
    """moto's S3 server on 127.0.0.1, started once a session (Ray workers get its address at start)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def worker_staging(tmp_path_factory) -> Path:
    """The Ray workers' scratch root (PRETRAIN_STAGING), apart from the driver's, as on another machine."""
    return tmp_path_factory.mktemp("ray-worker-node")


@pytest.fixture
def s3(s3_server, monkeypatch):
    """An empty S3 store with two buckets; s3fs configured by the standard AWS environment variables,
    as a user would configure it."""
    import s3fs

    # moto keeps its buckets across tests: start every test from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST"))
    for k, v in {**S3_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir("raw-bucket")
    fs.mkdir("out-bucket")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def ray_local(plugin_steps, s3_server, worker_staging):
    """One local Ray instance (2 CPUs) for the whole session; the executor reuses it. Its workers see
    the S3 server and their own scratch root: they are in the environment Ray starts in (as on a
    cluster, where `ray start` runs with the node's credentials), so jobs that connect later get them."""
    import os

    ray = pytest.importorskip("ray", reason="Ray is installed by `make install` (pretrain[ray])")
    node_env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_server, "PRETRAIN_STAGING": str(worker_staging)}
    saved = {k: os.environ.get(k) for k in node_env}
    os.environ.update(node_env)
    try:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    finally:  # the test process itself keeps its own environment
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield ray
    ray.shutdown()
