"""Sections about the run as a whole: the summary (config, hardware, headline figures) and its events."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from pretrain.report.html import (
    ImageSink,
    Section,
    cards,
    details,
    fmt_duration,
    fmt_num,
    kv_table,
    note,
    pre,
    table,
)
from pretrain.report.metrics import is_number
from pretrain.report.rundata import RunData
from pretrain.report.sections.common import num

# ----------------------------------------------------------------------------------------------- summary


# Event fields that are bookkeeping, not facts about the machine.
_EVENT_FIELDS = ("type", "step", "tokens", "event", "detail", "time_s", "lineage")


def key_values(text: str) -> dict[str, str]:
    """``world=1 device=cpu params=131,392`` -> {"world": "1", ...} (the trainer's event detail style)."""
    return dict(re.findall(r"(\w+)=(\S+)", text))


def _hardware(run: RunData) -> dict[str, Any]:
    """Device facts from the start/hardware events (detail and extra fields) and the checkpoint meta."""
    hw: dict[str, Any] = {}
    for ev in run.metrics.events:
        name = str(ev.get("event", ""))
        if name not in ("start", "run_start", "hardware", "device", "peak_flops") and "hardware" not in name:
            continue
        detail = ev.get("detail")
        facts = detail if isinstance(detail, dict) else key_values(str(detail or ""))
        for k, v in facts.items():
            hw.setdefault(k, v)
        for k, v in ev.items():
            if k not in _EVENT_FIELDS:
                hw.setdefault(k, v)
    meta = run.checkpoint_meta or {}
    for k in ("world_size", "distributed", "device", "precision"):
        if k in meta:
            hw.setdefault(k, meta[k])
    for k in ("device", "precision", "compile"):
        v = run.cfg(f"train.{k}")
        if v is not None:
            hw.setdefault(f"config train.{k}", v)
    return hw


def param_count(run: RunData) -> int | None:
    """Parameters as the trainer reported them (start event ``params=``), or meta.json / model_config."""
    hw = _hardware(run)
    for source in (hw, run.checkpoint_meta or {}, run.model_config or {}):
        for k in ("params", "num_params", "n_params"):
            v = source.get(k)
            if isinstance(v, str) and v.replace(",", "").isdigit():
                return int(v.replace(",", ""))
            if is_number(v):
                return int(v)
    return None


def summary(run: RunData, sink: ImageSink) -> Section | None:
    m = run.metrics
    items: list[tuple[str, str, str]] = []
    step = m.last("train", "step")
    total = m.last("train", "total_steps") or num(run.cfg("train.max_steps"))
    if step is not None:
        items.append(("steps", fmt_num(int(step)), f"of {fmt_num(int(total))} planned" if total else ""))
    tokens = m.last("train", "tokens")
    if tokens is not None:
        items.append(("tokens", fmt_num(int(tokens)), "trained on"))
    t = m.last("train", "time_s")
    if t is not None:
        items.append(("time", fmt_duration(t), "training wall clock"))
    n_params = param_count(run)
    if n_params:
        items.append(("parameters", fmt_num(n_params), "as reported by the trainer"))
    loss = m.last("train", "loss")
    if loss is not None:
        items.append(("train loss", fmt_num(loss), "last logged step"))
    vloss = m.last("eval", "val_loss")
    if vloss is not None:
        items.append(("val loss", fmt_num(vloss), "last in-training eval"))
    overall = (run.heldout or {}).get("overall") if isinstance(run.heldout, dict) else None
    bpb = num(overall.get("bits_per_byte")) if isinstance(overall, dict) else None
    if bpb is not None:
        items.append(("bits per byte", fmt_num(bpb), "eval/heldout.json, all domains"))
    elif m.last("eval", "val_bpb") is not None:
        items.append(("val bits per byte", fmt_num(m.last("eval", "val_bpb")), "last in-training eval"))
    tps = m.series("train", "tokens_per_s")[1]
    if len(tps):
        items.append(("tokens / s", fmt_num(float(np.median(tps[-20:])), 3), "median of last 20 logs"))
    mfu = m.last("train", "mfu")
    if mfu is not None:
        items.append(("MFU", f"{mfu * 100:.1f}%" if mfu <= 1 else fmt_num(mfu), "model FLOPs utilisation"))
    if not items and not run.config and not run.config_text:
        return None
    body = cards(items) if items else note("No training metrics recorded yet.")
    rows = []
    for key in ("name", "preset"):
        if run.config.get(key):
            rows.append([key, run.config[key]])
    model = run.config.get("model") if isinstance(run.config.get("model"), dict) else {}
    shape = ", ".join(f"{k}={model[k]}" for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                                   "max_seq_len") if k in model)
    if shape:
        rows.append(["model", shape])
    tr = run.config.get("train") if isinstance(run.config.get("train"), dict) else {}
    recipe = ", ".join(f"{k}={tr[k]}" for k in ("seq_len", "micro_batch", "grad_accum", "lr", "schedule",
                                                "warmup_steps", "max_steps", "weight_decay") if k in tr)
    if recipe:
        rows.append(["train", recipe])
    stages = m.stages()
    if stages:
        rows.append(["stages", " -> ".join(f"{n} (step {int(s)})" for s, n in stages)])
    if rows:
        body += table(["run", ""], rows, numeric=False, cls="kv")
    hw = _hardware(run)
    if hw:
        body += "<h3>Hardware</h3>" + kv_table(hw, limit=30)
    if isinstance(run.timings, dict) and run.timings:
        body += "<h3>Stage timings</h3>" + table(
            ["stage", "seconds"], [[k, v] for k, v in run.timings.items()])
    if run.config_text:
        body += details("Resolved config (config.toml)", pre(run.config_text, limit=20000))
    return Section("summary", "Run summary", body, subtitle=str(run.root))



# ------------------------------------------------------------------------------------- interventions


def interventions(run: RunData, sink: ImageSink) -> Section | None:
    evs = [e for e in run.metrics.events if e.get("event") != "checkpoint"]
    ckpts = [e for e in run.metrics.events if e.get("event") == "checkpoint"]
    if not evs and not ckpts:
        return None
    counts = Counter(str(e.get("event")) for e in run.metrics.events)
    body = cards([(k, fmt_num(v), "events") for k, v in counts.most_common(8)])
    rows = []
    for e in evs[:200]:
        detail = e.get("detail", "")
        extra = {k: v for k, v in e.items() if k not in _EVENT_FIELDS}  # lineage lists are too long to show
        if isinstance(detail, dict):
            extra, detail = {**detail, **extra}, ""
        text = " ".join([str(detail)] + [f"{k}={fmt_num(v) if is_number(v) else v}" for k, v in extra.items()])
        rows.append([e.get("step", ""), e.get("event", ""), text.strip()[:300]])
    if rows:
        body += table(["step", "event", "detail"], rows)
    if len(evs) > 200:
        body += note(f"{len(evs) - 200} more events not listed.")
    if ckpts:
        body += note(f"{len(ckpts)} checkpoints saved, at steps "
                     + ", ".join(str(e.get("step")) for e in ckpts[:30]) + (" ..." if len(ckpts) > 30 else ""))
    return Section("interventions", "Events and interventions", body,
                   subtitle="Stage starts, loss spikes, skipped batches, rewinds and other events of the run.")


