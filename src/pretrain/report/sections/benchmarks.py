"""Benchmarks during training (eval.tasks): each task's accuracy over steps, and the centred aggregate."""

from __future__ import annotations

from pretrain.report import plots
from pretrain.report.html import ImageSink, Section, fmt_num
from pretrain.report.plots import Panel, Series
from pretrain.report.rundata import RunData
from pretrain.report.sections.common import eval_groups


def task_names(keys: list[str]) -> list[str]:
    """``task/<name>/<metric>`` keys -> the task names, sorted."""
    return sorted({k.split("/")[1] for k in keys if k.count("/") >= 2})


def benchmarks(run: RunData, sink: ImageSink) -> Section | None:
    m = run.metrics
    names = task_names(m.keys("eval", "task/"))
    if not names:
        return None
    live = eval_groups(m).get("", m)  # the in-training rows (not the final model's candidates)
    panels = []
    for name in names:
        series = [Series(metric, *live.series("eval", f"task/{name}/{metric}"), style="points",
                         color=plots.color(i), linestyle="-")
                  for i, metric in enumerate(("acc", "acc_norm", "centered_acc"))
                  if f"task/{name}/{metric}" in live.keys("eval", f"task/{name}/")]
        panels.append(Panel(name, series, "accuracy"))
    if live.keys("eval", "tasks/centered_acc"):
        panels.append(Panel("centred accuracy, mean over tasks (CORE-style)",
                            [Series("tasks/centered_acc", *live.series("eval", "tasks/centered_acc"),
                                    style="points", color="#111827", linestyle="-")], "centred accuracy"))
    png = plots.panel_grid(panels[:12], ncols=3, stages=m.stages(), panel_size=(4.0, 2.8))
    if not png:
        return None
    last = ", ".join(f"{n} {fmt_num(m.last('eval', f'task/{n}/acc'))}" for n in names
                     if m.last("eval", f"task/{n}/acc") is not None)
    body = f"<p>Last accuracy: {last}.</p>" + sink.img("benchmarks", png, "benchmark scores during training")
    return Section("benchmarks", "Benchmarks during training", body, images=1,
                   subtitle="lm-eval multiple-choice tasks scored at each evaluation (eval.tasks); "
                            "centred accuracy is 0 at chance and 1 when perfect.")
