"""MLflow: one MLflow run per training run, through ``MlflowClient`` (no global active run). The tracking
server is ``MLFLOW_TRACKING_URI`` (a local ``sqlite:///...`` store, or an ``http(s)://`` server whose
credentials come from ``MLFLOW_TRACKING_TOKEN`` / ``MLFLOW_TRACKING_USERNAME`` and ``_PASSWORD``), else
``sqlite:///<run>/mlflow.db``. The experiment is ``train.tracker_project`` (default ``pretrain``).
A server that does not answer costs MLflow's own retries once (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` bound them); then the tracker is off."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pretrain.train.callbacks.trackers import Tracker

BATCH = 100  # MLflow's limit of params per log_batch call (metrics: 1000)


class MlflowTracker(Tracker):
    name = "mlflow"

    def start(self, run_root: Path, name: str, params: dict[str, Any], run_id: str) -> str:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(run_root).resolve() / 'mlflow.db'}"
        self._client = client = MlflowClient(tracking_uri=uri)
        if not run_id:
            project = self.project or "pretrain"
            exp = client.get_experiment_by_name(project)
            exp_id = exp.experiment_id if exp is not None else client.create_experiment(
                project, artifact_location=local_artifacts(uri))
            run_id = client.create_run(exp_id, run_name=name).info.run_id
            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), BATCH):
                client.log_batch(run_id, params=items[i:i + BATCH])
        else:
            client.update_run(run_id, status="RUNNING")
        self._run_id = run_id
        return run_id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self._run_id, metrics=items[i:i + 1000])

    def event(self, step: int, name: str, detail: str) -> None:
        self.log(step, {f"event/{name}": 1.0})
        self._client.set_tag(self._run_id, "last_event", f"step {step}: {name} {detail}"[:5000])

    def upload(self, path: Path, name: str) -> None:
        if path.is_dir():
            self._client.log_artifacts(self._run_id, str(path), name)
        else:
            self._client.log_artifact(self._run_id, str(path), name)

    def finish(self, summary: dict[str, float]) -> None:
        if summary:
            self.log(self.last_step, summary)
        self._client.set_terminated(self._run_id)


def local_artifacts(uri: str) -> str | None:
    """A sqlite store keeps artifacts in ``mlartifacts/`` beside its database file, as ``mlflow server``
    does (MLflow's own default is ./mlruns under whatever directory training started in); a server
    decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return str(Path(uri[len("sqlite:///"):]).parent / "mlartifacts")
