"""eval.tasks: lm-eval multiple-choice scores in the eval rows during training, equal to scoring the
same checkpoint afterwards, and the same on 2 gloo ranks as in one process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import tiny_cfg, torchrun_cmd
from pretrain.configlib import ConfigError
from pretrain.train import train

pytest.importorskip("lm_eval")

LOCAL_TASK = """\
task: local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
doc_to_text: "{{{{query}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def local_task(root: Path) -> Path:
    """A folder holding an lm-eval task over a local JSONL file: how a local copy of a Hub task is used."""
    root.mkdir(parents=True, exist_ok=True)
    items = [{"query": f"The number after {i} is", "choices": [f" {i + 1}", f" {i + 7}", " blue", " never"],
              "gold": 0} for i in range(10)]
    (root / "local.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    (root / "local_mc.yaml").write_text(LOCAL_TASK.format(data=root / "local.jsonl"))
    return root


def _evals(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["type"] == "eval" and not r.get("model")]


def _score_checkpoint(ckpt: Path, tasks: list[str], limit: int, paths: list[str]) -> dict:
    """What `pretrain eval --lm-eval` computes for a checkpoint, per task."""
    from lm_eval.tasks import TaskManager

    from pretrain.eval import lm_harness
    from pretrain.model.io import load_model
    from pretrain.tokenizer import load_tokenizer

    lm = lm_harness.PretrainLM(model=load_model(ckpt), tokenizer=load_tokenizer(ckpt / "tokenizer.json"),
                               device="cpu")
    from lm_eval import simple_evaluate

    manager = TaskManager(include_path=[str(lm_harness.TASKS_DIR), *paths], include_defaults=False)
    out = simple_evaluate(model=lm, tasks=tasks, limit=limit or None, task_manager=manager, bootstrap_iters=0)
    return out["results"]


def test_task_scores_at_the_interval_equal_scoring_the_checkpoint(tiny_data, tmp_path):
    paths = [str(local_task(tmp_path / "tasks"))]
    run = tmp_path / "run"
    cfg = tiny_cfg(tiny_data, "train.max_steps=4", "train.checkpoint_interval=2", "eval.interval=2",
                   'eval.tasks=["pretrain_offline_mc", "local_mc"]', "eval.task_limit=6",
                   f"eval.task_paths={json.dumps(paths)}")
    train(cfg, run, progress=False)
    evals = _evals(run)
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        ref = _score_checkpoint(run / "checkpoints" / f"step_{r['step']:08d}", ["pretrain_offline_mc", "local_mc"],
                                6, paths)
        for task in ("pretrain_offline_mc", "local_mc"):
            assert r[f"task/{task}/acc"] == pytest.approx(ref[task]["acc,none"])
            assert r[f"task/{task}/acc_norm"] == pytest.approx(ref[task]["acc_norm,none"])
        chance = {"pretrain_offline_mc": 1 / 3, "local_mc": 1 / 4}
        centred = [(r[f"task/{t}/acc"] - c) / (1 - c) for t, c in chance.items()]
        assert r["tasks/centered_acc"] == pytest.approx(sum(centred) / 2)
    final = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(x.get("model") and "task/local_mc/acc" in x for x in final)  # the final model is scored too

    from pretrain.report import build_report

    html = Path(build_report(run)).read_text()
    assert "Benchmarks during training" in html and "local_mc" in html


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_gloo_ranks_score_like_one_process(tiny_data, tmp_path, mode):
    """Each rank scores its share (padded to equal batches under FSDP, whose forward is collective)."""
    run = tmp_path / mode
    cmd = torchrun_cmd(tiny_data, run, "train.max_steps=3", "train.micro_batch=2", "train.checkpoint_interval=3",
                       'eval.tasks=["pretrain_offline_mc"]', f"train.distributed={mode}", 'train.trackers=["mlflow"]',
                       "eval.task_limit=7")  # 7 questions: the two shares differ in length
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = _evals(run)
    # Only rank 0 tracks: one MLflow run, holding the task scores of the eval row.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (mrun,) = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])
    hist = client.get_metric_history(mrun.info.run_id, "eval/task/pretrain_offline_mc/acc")
    assert [(m.step, m.value) for m in hist] == [(3, row["task/pretrain_offline_mc/acc"])]
    # (an FSDP step checkpoint has no safetensors; final/ holds the same weights: no averaging here)
    ref = _score_checkpoint(run / "checkpoints" / "final", ["pretrain_offline_mc"], 7, [])
    assert row["task/pretrain_offline_mc/acc"] == pytest.approx(ref["pretrain_offline_mc"]["acc,none"])
    assert row["task/pretrain_offline_mc/acc_norm"] == pytest.approx(ref["pretrain_offline_mc"]["acc_norm,none"])


@pytest.mark.parametrize("over, field", [('eval.tasks=["no_such_task_xyz"]', "eval.tasks"),
                                         ('eval.tasks=["pretrain_offline_gen"]', "eval.tasks"),
                                         ('eval.task_paths=["/nonexistent/tasks"]', "eval.task_paths")])
def test_bad_task_settings_name_the_field(tiny_data, tmp_path, over, field):
    cfg = tiny_cfg(tiny_data, 'eval.tasks=["pretrain_offline_mc"]', over)
    with pytest.raises(ConfigError, match=field):
        train(cfg, tmp_path, progress=False)
