"""Trackers (train.trackers): W&B offline, MLflow on a sqlite store and trackio locally, each read back
with the library's own reader; a resumed run continues the same tracker run; a tracker that cannot
connect does not stop training; credentials never reach the run's files."""

from __future__ import annotations

import glob
import json
import os
import socket
import struct
import tempfile
import time
from pathlib import Path

import pytest

from conftest import tiny_cfg
from pretrain.train import train

# trackio fixes its store directory when first imported: point it at a temporary one before that.
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="pretrain-trackio-"))
pytest.importorskip("wandb")
pytest.importorskip("mlflow")
pytest.importorskip("trackio")


def _rows(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["type"] == kind]


def _crash_at(monkeypatch, n: int):
    """Make the n-th batch drawn raise, as a preempted or crashed run would stop."""
    from pretrain.data import loader as loader_mod

    real, calls = loader_mod.PackedLoader.next_batch, {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("simulated crash")
        return real(self)

    monkeypatch.setattr(loader_mod.PackedLoader, "next_batch", flaky)
    return lambda: monkeypatch.setattr(loader_mod.PackedLoader, "next_batch", real)


def _wandb_records(path: str):
    """The protobuf records of a .wandb file (W&B's LevelDB-style log: 32 KiB blocks of
    checksum/length/type-framed chunks after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if n == 0 and kind == 0:
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec
            buf = b""


def _wandb_complete(path: str, timeout: float = 60.0) -> list:
    """The records of a .wandb file once W&B's service has written its exit record (it writes
    asynchronously: finish() can return before the file is complete)."""
    deadline = time.time() + timeout
    while True:
        recs = list(_wandb_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.time() > deadline:
            return recs
        time.sleep(0.2)


def _wandb_read(run: Path):
    ids, config, history = set(), {}, {}
    for f in sorted(glob.glob(str(run / "wandb" / "offline-run-*" / "run-*.wandb"))):
        for rec in _wandb_complete(f):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                ids.add(rec.run.run_id)
                config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
            elif kind == "config":
                config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
            elif kind == "history":
                item = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
                if "trainer/step" in item:
                    history.setdefault(item["trainer/step"], {}).update(item)
    return ids, config, history


def test_wandb_offline_gets_config_and_every_row_and_resumes_the_same_run(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_cfg(tiny_data, "train.max_steps=6", "train.checkpoint_interval=2", "eval.interval=3",
                   'train.trackers=["wandb"]')
    restore = _crash_at(monkeypatch, 5)  # during step 5: the last checkpoint is step 4
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path, progress=False)
    restore()
    train(cfg, tmp_path, progress=False)
    ids, config, history = _wandb_read(tmp_path)
    assert len(ids) == 1 and len(glob.glob(str(tmp_path / "wandb" / "offline-run-*"))) == 2  # one run, resumed
    assert config["train.max_steps"] == 6 and config["model.dim"] == 32
    for r in _rows(tmp_path, "train"):
        assert history[r["step"]]["train/loss"] == pytest.approx(r["loss"])
    evals = _rows(tmp_path, "eval")
    assert evals and all(history[r["step"]]["eval/" + ("final/" if r.get("model") == "final" else "")
                                            + "val_loss"] == pytest.approx(r["val_loss"])
                         for r in evals if not r.get("model") or r.get("model") == "final")
    assert history[4].get("event/checkpoint") == 1.0

    # The report goes to the same W&B run as an artifact (a third offline file of the same id).
    from pretrain.train.callbacks.trackers import attach_report

    rep = tmp_path.parent / f"{tmp_path.name}-report"
    rep.mkdir()
    (rep / "index.html").write_text("<html>report</html>")
    assert attach_report(tmp_path, rep) == ["wandb"]
    files = sorted(glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert len(files) == 3 and len({Path(f).name for f in files}) == 1
    arts = [r.artifact for f in files for r in _wandb_complete(f) if r.WhichOneof("record_type") == "artifact"]
    assert [(a.name, a.type) for a in arts] == [("report", "report")]


def test_mlflow_sqlite_store_read_back_and_resumed(tiny_data, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = tmp_path / "run"
    cfg = tiny_cfg(tiny_data, "train.max_steps=6", "train.checkpoint_interval=2", "eval.interval=3",
                   'train.trackers=["mlflow"]', 'train.tracker_project="exp1"')
    restore = _crash_at(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, run, progress=False)
    restore()
    train(cfg, run, progress=False)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("exp1")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1  # the resumed run continued the same MLflow run
    mrun = runs[0]
    assert mrun.data.params["train.max_steps"] == "6" and mrun.data.params["model.dim"] == "32"
    assert mrun.info.status == "FINISHED"
    losses = {m.step: m.value for m in client.get_metric_history(mrun.info.run_id, "train/loss")}
    assert {r["step"]: pytest.approx(r["loss"]) for r in _rows(run, "train")} == losses
    val = {m.step: m.value for m in client.get_metric_history(mrun.info.run_id, "eval/val_loss")}
    assert {r["step"] for r in _rows(run, "eval") if not r.get("model")} <= set(val)
    assert json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"] == mrun.info.run_id
    assert mrun.data.metrics["final/val_loss"] == pytest.approx(_rows(run, "eval")[-1]["val_loss"])

    # `pretrain report` attaches the report to the same run as an artifact.
    from typer.testing import CliRunner

    from pretrain.cli import app

    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0 and "report attached to: mlflow" in res.output, res.output
    assert any(a.path.endswith("index.html") for a in client.list_artifacts(mrun.info.run_id, "report"))


def test_trackio_local_store_read_back_and_resumed(tiny_data, tmp_path, monkeypatch):
    from trackio import SQLiteStorage

    project = f"pretrain-test-{tmp_path.name}"
    cfg = tiny_cfg(tiny_data, "train.max_steps=4", "train.checkpoint_interval=2",
                   'train.trackers=["trackio", "tensorboard"]', f'train.tracker_project="{project}"')
    restore = _crash_at(monkeypatch, 4)  # during step 4: the last checkpoint is step 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path, progress=False)
    restore()
    train(cfg, tmp_path, progress=False)
    name = json.loads((tmp_path / "trackers.json").read_text())["trackio"]["run_id"]
    want = {r["step"]: r["loss"] for r in _rows(tmp_path, "train")}
    deadline = time.time() + 30  # trackio writes its store from a background thread
    while True:
        got = {r["step"]: r["train/loss"] for r in SQLiteStorage.get_logs(project, name) if "train/loss" in r}
        if set(got) >= set(want) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert SQLiteStorage.get_runs(project) == [name]  # the resumed run continued the same trackio run
    assert got == {k: pytest.approx(v) for k, v in want.items()}
    assert SQLiteStorage.get_run_config(project, name)["train.max_steps"] == 4
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))  # both trackers at once


def test_unreachable_tracker_warns_once_and_training_goes_on(tiny_data, tmp_path, monkeypatch, capfd):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = tiny_cfg(tiny_data, "train.max_steps=4", 'train.trackers=["mlflow", "tensorboard"]')
    res = train(cfg, tmp_path, progress=False)
    assert res.step == 4 and res.final_checkpoint is not None
    err = capfd.readouterr().err
    assert err.count("warning: tracker 'mlflow' failed") == 1, err
    assert [r["step"] for r in _rows(tmp_path, "train")] == [1, 2, 3, 4]
    failed = [r for r in _rows(tmp_path, "event") if r["event"] == "tracker_failed"]
    assert len(failed) == 1 and failed[0]["detail"].startswith("mlflow:")


def test_credentials_reach_none_of_the_run_files(tiny_data, tmp_path, monkeypatch):
    marker = "FAKEKEY" + "7" * 33  # W&B checks the length of a key; 40 characters
    for var in ("WANDB_API_KEY", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "HF_TOKEN"):
        monkeypatch.setenv(var, marker)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = tmp_path / "run"
    cfg = tiny_cfg(tiny_data, "train.max_steps=3", 'train.trackers=["wandb", "mlflow", "trackio", "tensorboard"]',
                   f'train.tracker_project="pretrain-test-{tmp_path.name}"')
    train(cfg, run, progress=False)
    from pretrain.report import build_report

    build_report(run)
    checked = [p for p in run.rglob("*") if p.is_file()]  # W&B's own files under run/wandb too
    checked += [p for p in Path(os.environ["TRACKIO_DIR"]).rglob("*") if p.is_file()]
    assert {"config.toml", "metrics.jsonl", "trainer_state.pt", "index.html"} <= {p.name for p in checked}
    assert any(p.suffix == ".wandb" for p in checked) and (tmp_path / "mlflow.db").is_file()
    checked.append(tmp_path / "mlflow.db")
    leaks = [str(p) for p in checked if marker.encode() in p.read_bytes()]
    assert not leaks


def test_rows_after_a_rewind_still_reach_the_tracker(tmp_path, monkeypatch):
    """A rewind replaces the trainer's metrics logger; the tracker follows it (the rewind and skip events
    logged after it, and the retrained steps)."""
    import torch
    from mlflow.tracking import MlflowClient
    from torch import nn
    from trainkit import make_trainer, toy_cfg

    from pretrain.model import Transformer

    class Spiky(nn.Module):  # forward 5 (step 6) returns a 100x loss
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, input_ids, targets=None, doc_ids=None):
            out = self.inner(input_ids, targets, doc_ids)
            if self.calls == 5:
                out.ce_sum = out.ce_sum * 100.0
            self.calls += 1
            return out

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = toy_cfg("train.max_steps=8", "train.spike.min_history=3", "train.spike.window=8", "train.spike.sigma=10",
                  'train.spike.policy="rewind"', "train.checkpoint_interval=4", 'train.trackers=["mlflow"]')
    torch.manual_seed(0)
    make_trainer(cfg, tmp_path / "run", model=Spiky(Transformer(cfg.model))).fit()
    events = [r["event"] for r in _rows(tmp_path / "run", "event")]
    assert "rewind" in events and "skip" in events
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])
    for name in ("rewind", "skip"):
        assert client.get_metric_history(run.info.run_id, f"event/{name}"), name
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "train/loss")}
    logged = {r["step"] for r in _rows(tmp_path / "run", "train") if isinstance(r["loss"], float)}
    assert steps == logged and max(steps) == 8  # (a skipped step's loss is not a number)
