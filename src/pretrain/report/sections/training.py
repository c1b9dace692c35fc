"""Sections about training: loss curves, optimisation and throughput, MoE and MTP."""

from __future__ import annotations

import re

import numpy as np

from pretrain.report import plots
from pretrain.report.html import ImageSink, Section, fmt_num, note
from pretrain.report.plots import Panel, Series
from pretrain.report.rundata import RunData
from pretrain.report.sections.common import eval_groups, marker_events, num, with_model

# ------------------------------------------------------------------------------------------- loss curves


def loss(run: RunData, sink: ImageSink) -> Section | None:
    m = run.metrics
    if not m.keys("train", "loss") and not m.keys("eval", "val_"):
        return None
    stages, events, st = m.stages(), marker_events(m), m.step_to_tokens()
    body, n_img = "", 0
    series = [Series("train loss", *m.series("train", "loss"), style="noisy", color=plots.color(0))]
    for i, (model, g) in enumerate(eval_groups(m).items()):
        series.append(Series(with_model("validation loss", model), *g.series("eval", "val_loss"), style="points",
                             color=plots.color(1 + 2 * i)))
    png = plots.line_chart(Panel("Training and validation loss", series, "cross-entropy (nats / token)"),
                           stages, events, st)
    if png:
        body += sink.img("loss", png, "training and validation loss")
        n_img += 1

    domains = sorted({k.split("/", 1)[1] for k in m.keys("train", "loss/") + m.keys("eval", "val_loss/")})
    if domains:
        ds = []
        for i, d in enumerate(domains):
            ds.append(Series(f"train {d}", *m.series("train", f"loss/{d}"), style="noisy", color=plots.color(i)))
            ds.append(Series(f"val {d}", *m.series("eval", f"val_loss/{d}"), style="points", color=plots.color(i),
                             linestyle="--"))
        png = plots.line_chart(Panel("Loss per domain", ds, "cross-entropy (nats / token)"), stages, None, st)
        if png:
            body += sink.img("loss_per_domain", png, "loss per domain")
            n_img += 1

    bpb = [Series("validation (all domains)", *m.series("eval", "val_bpb"), style="points", color="#111827")]
    bpb += [Series(d.split("/", 1)[1], *m.series("eval", d), style="points", color=plots.color(i), linestyle="--")
            for i, d in enumerate(m.keys("eval", "val_bpb/"))]
    png = plots.line_chart(Panel("Validation bits per byte (tokenizer-independent)", bpb, "bits / byte"),
                           stages, None, st)
    if png:
        body += sink.img("bits_per_byte", png, "validation bits per byte")
        n_img += 1
    # Any other eval field (e.g. the long-context gate's needle_accuracy) gets its own small panel.
    other = [k for k in m.keys("eval") if not k.startswith(("val_loss", "val_bpb", "task/", "tasks/"))
             and not k.endswith("seq_len")]  # benchmark scores have their own section
    png = plots.panel_grid([Panel(k, [Series(k, *m.series("eval", k), style="points", color=plots.color(i))], k)
                            for i, k in enumerate(other[:9])], ncols=3, stages=stages, panel_size=(4.0, 2.8))
    if png:
        body += "<h3>Other evaluation metrics</h3>" + sink.img("other_eval_metrics", png, "other evaluation metrics")
        n_img += 1
    if not n_img:
        return None
    return Section("loss", "Loss curves", body, images=n_img,
                   subtitle="Dashed vertical lines mark stage boundaries; coloured lines mark interventions.")


# -------------------------------------------------------------------------------------- optimisation


# Train fields with a dedicated plot elsewhere; the rest go into "other training metrics".
_HANDLED = re.compile(r"^(loss|loss/.*|mix/.*|moe/.*|mtp/.*|aux_loss|mtp_loss.*|lr|grad_norm|tokens_per_s|mfu|"
                      r"mem_mb|total_steps)$")


def optimisation(run: RunData, sink: ImageSink) -> Section | None:
    m = run.metrics
    if not m.train:
        return None
    clip = num(run.cfg("train.grad_clip"))
    mfu_x, mfu_y = m.series("train", "mfu")
    panels = [
        Panel("Learning rate", [Series("lr", *m.series("train", "lr"))], "learning rate", logy=False),
        Panel("Gradient norm (before clipping)", [Series("grad norm", *m.series("train", "grad_norm"),
                                                         style="noisy", color=plots.color(1))],
              "global L2 norm", hlines=[(clip, f"clip = {clip:g}")] if clip else []),
        Panel("Throughput", [Series("tokens/s", *m.series("train", "tokens_per_s"), color=plots.color(2))],
              "tokens / second", logy=False),
        Panel("Model FLOPs utilisation", [Series("MFU", mfu_x, mfu_y, color=plots.color(3))], "MFU",
              logy=False, percent=bool(len(mfu_y)) and float(np.max(mfu_y)) <= 1.0),
        Panel("Memory", [Series("memory", *m.series("train", "mem_mb"), color=plots.color(4))], "MiB",
              logy=False),
    ]
    body, n_img = "", 0
    png = plots.panel_grid(panels, stages=m.stages())
    if png:
        body += sink.img("optimisation", png, "learning rate, gradient norm, throughput, MFU, memory")
        n_img += 1
    extra = [k for k in m.keys("train") if not _HANDLED.match(k)]
    varying = [k for k in extra if np.ptp(m.series("train", k)[1]) > 0]
    constant = [k for k in extra if k not in varying]
    if varying:
        png = plots.panel_grid([Panel(k, [Series(k, *m.series("train", k), color=plots.color(i))], k)
                                for i, k in enumerate(varying[:12])], ncols=3, panel_size=(4.0, 2.8))
        if png:
            body += "<h3>Other training metrics</h3>" + sink.img("other_train_metrics", png, "other training metrics")
            n_img += 1
    if constant:  # a flat line per field says less than its value
        body += note("Constant over the run: " + ", ".join(f"{k} = {fmt_num(m.last('train', k))}" for k in constant))
    if not n_img:
        return None
    return Section("optimisation", "Optimisation and throughput", body, images=n_img)


# ------------------------------------------------------------------------------------------- MoE / MTP


def moe(run: RunData, sink: ImageSink) -> Section | None:
    m = run.metrics
    moe_keys = m.keys("train", "moe/")
    aux = [k for k in m.keys("train") if k == "aux_loss" or k.startswith(("mtp_loss", "mtp/"))]
    if not moe_keys and not aux:
        return None
    body, n_img = "", 0
    load_keys = [k for k in moe_keys if "load" in k]
    line_keys = [k for k in moe_keys if k not in load_keys] if len(load_keys) > 4 else moe_keys
    if len(load_keys) > 4:  # per-expert loads: a heatmap reads better than a dozen tangled lines
        xs, _ = m.series("train", load_keys[0])
        cols = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), 40)).astype(int)) if len(xs) else []
        mat = np.array([[np.interp(xs[c], *m.series("train", k)) for c in cols] for k in load_keys])
        png = plots.heatmap(mat, [str(int(xs[c])) for c in cols], load_keys, "Expert load over training",
                            "optimizer step", "expert", "fraction of routed tokens", annotate=False,
                            cmap="viridis")
        if png:
            body += sink.img("moe_loads", png, "expert loads over training")
            n_img += 1
    panels = [Panel(k, [Series(k, *m.series("train", k), color=plots.color(i))], k)
              for i, k in enumerate(line_keys[:9] + aux)]
    png = plots.panel_grid(panels, ncols=3, stages=m.stages(), panel_size=(4.0, 2.8))
    if png:
        body += sink.img("moe_mtp", png, "MoE balance and MTP losses")
        n_img += 1
    if not n_img:
        return None
    return Section("moe", "Mixture of experts and multi-token prediction", body, images=n_img,
                   subtitle="Router balance (max load violation, auxiliary loss) and MTP losses when enabled.")


