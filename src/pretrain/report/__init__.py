"""The run report: a self-contained HTML page, run comparison, TensorBoard scalars and a live console view.

``build_report(run_dir)`` reads everything a run directory holds (config, metrics.jsonl, curation and
tokenizer statistics, evaluation and scaling results) and writes ``report/index.html`` with the plots
embedded; every part is optional. ``compare_runs([a, b], out)`` overlays runs. ``tensorboard.write_scalars``
mirrors metrics.jsonl into TensorBoard, and ``live.LiveProgress`` is the console view during training.
"""

from pretrain.report.build import build_report
from pretrain.report.compare import compare_runs

__all__ = ["build_report", "compare_runs"]
