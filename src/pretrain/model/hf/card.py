"""The model card of an exported folder: README.md with YAML metadata, as the Hub shows it.

``write_card(checkpoint, out, model_type)`` gathers what the run directory knows about the model and
writes ``out/README.md``: the data (sources, the curation funnel, tokens per domain and split), the
training (steps, tokens, the main config fields, the resolved config in full) and the evaluation
(held-out loss and bits per byte, benchmark scores from training and from `pretrain eval`). The YAML
header carries ``library_name``, ``pipeline_tag``, tags, Hub datasets named by ``hf://datasets/...``
inputs and a ``model-index`` of the scores, so the folder is ready for ``huggingface-cli upload``.
Everything is read tolerantly: a missing file leaves its part out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

TRAIN_FIELDS = ("seq_len", "max_steps", "lr", "optimizer", "schedule", "warmup_steps", "weight_decay",
                "micro_batch", "grad_accum", "global_batch", "precision")
MODEL_FIELDS = ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "max_seq_len")


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _config(ckpt: Path) -> dict:
    from pretrain import configlib

    try:
        return configlib.read_file(ckpt / "config.toml")
    except (OSError, ValueError):
        return {}


def _run_root(ckpt: Path) -> Path | None:
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def _last_eval(run: Path) -> dict:
    """The last in-training eval row of the plain model (metrics.jsonl)."""
    last: dict = {}
    try:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("type") == "eval":
            last = row if not row.get("model") or row.get("model") == "final" else last
    return last


def _hub_datasets(inputs: list) -> list[str]:
    out = []
    for item in inputs:
        m = re.match(r"^hf://datasets/([^/@]+/[^/@]+)", str(item))
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def gather(ckpt: Path | None) -> dict[str, Any]:
    """What the card says, from a checkpoint directory and its run directory (None: nothing known)."""
    if ckpt is None:
        return {}
    run = _run_root(ckpt)
    cfg = _config(ckpt)
    data = cfg.get("data", {}) if isinstance(cfg.get("data"), dict) else {}
    tokens_dir = Path(data["tokens"]) if data.get("tokens") else (run / "tokens" if run else None)
    info: dict[str, Any] = {"name": cfg.get("name") or (run.name if run else ckpt.name), "config": cfg,
                            "meta": _json(ckpt / "meta.json"), "inputs": list(data.get("inputs") or [])}
    if run is not None:
        info["curation"] = _json(run / "curated" / "stats.json")
        info["eval_row"] = _last_eval(run)
        info["heldout"] = _json(run / "eval" / "heldout.json")
        info["lm_eval"] = _json(run / "eval" / "lm_eval.json").get("results", {})
        # what curation actually read beats the config's data.inputs (which may be a default)
        info["inputs"] = list(info["curation"].get("inputs") or []) or info["inputs"]
    info["tokens"] = _json(tokens_dir / "stats.json") if tokens_dir is not None else {}
    return info


def scores(info: dict) -> list[tuple[str, str, float, str]]:
    """(dataset, metric, value, where) for every number the card reports."""
    out = []
    row = info.get("eval_row") or {}
    for key in ("val_loss", "val_bpb"):
        if isinstance(row.get(key), (int, float)):
            out.append(("held-out split", key, float(row[key]), f"training, step {row.get('step')}"))
    for key, value in sorted(row.items()):
        if key.startswith("task/") and key.count("/") == 2 and isinstance(value, (int, float)):
            _, task, metric = key.split("/")
            out.append((task, metric, float(value), f"training, step {row.get('step')}"))
    for task, res in sorted((info.get("lm_eval") or {}).items()):
        for metric, value in sorted(res.items()):
            if isinstance(value, (int, float)) and not metric.endswith(("_stderr,none", "sample_len")) \
                    and "stderr" not in metric:
                out.append((task, metric.split(",")[0], float(value), "pretrain eval"))
    return out


def metadata(info: dict, model_type: str) -> dict:
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation",
                            "tags": list(dict.fromkeys(["pretrain", "base-model", *([model_type] if model_type else [])]))}
    hub = _hub_datasets(info.get("inputs", []))
    if hub:
        meta["datasets"] = hub
    results = []
    for dataset, metric, value, _ in scores(info):
        results.append({"task": {"type": "text-generation"}, "dataset": {"name": dataset, "type": dataset},
                        "metrics": [{"type": metric, "value": round(value, 6), "name": metric}]})
    if results:
        meta["model-index"] = [{"name": str(info.get("name", "model")), "results": results}]
    return meta


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _data_section(info: dict) -> str:
    text = "## Data\n\n"
    if info.get("inputs"):
        text += "Sources: " + ", ".join(f"`{s}`" for s in info["inputs"]) + ".\n\n"
    cur = info.get("curation") or {}
    if cur:
        text += (f"Curation funnel: {cur.get('documents_in', 0):,} documents in, {cur.get('kept', 0):,} kept, "
                 f"{cur.get('removed', 0):,} removed, {cur.get('quarantined', 0):,} quarantined.\n\n")
        steps = [st for st in cur.get("steps") or [] if isinstance(st, dict) and st.get("name")]
        if steps:
            text += _table(("curation step", "documents in", "removed"),
                           [(st["name"], f"{st.get('documents_in', 0):,}", f"{st.get('removed', 0):,}")
                            for st in steps]) + "\n"
    splits = (info.get("tokens") or {}).get("splits") or {}
    rows = [(d, s, f"{v.get('documents', 0):,}", f"{v.get('tokens', 0):,}")
            for s, per in splits.items() for d, v in sorted(per.items())]
    if rows:
        text += "Tokens per domain:\n\n" + _table(("domain", "split", "documents", "tokens"), rows) + "\n"
    return text if text != "## Data\n\n" else "## Data\n\nNo data summary was found beside the checkpoint.\n\n"


def _training_section(info: dict) -> str:
    cfg, meta = info.get("config") or {}, info.get("meta") or {}
    text = "## Training\n\n"
    if meta:
        text += f"Trained {meta.get('step', '?')} steps on {meta.get('tokens', 0):,} tokens.\n\n"
    rows = [(f"model.{k}", (cfg.get("model") or {}).get(k)) for k in MODEL_FIELDS if k in (cfg.get("model") or {})]
    rows += [(f"train.{k}", (cfg.get("train") or {}).get(k)) for k in TRAIN_FIELDS if k in (cfg.get("train") or {})]
    if rows:
        text += _table(("setting", "value"), rows) + "\n"
    if cfg:
        text += "<details><summary>Resolved config</summary>\n\n```json\n" + json.dumps(cfg, indent=1, default=str) \
            + "\n```\n</details>\n\n"
    return text


def render(info: dict, model_type: str) -> str:
    head = "---\n" + yaml.safe_dump(metadata(info, model_type), sort_keys=False) + "---\n\n"
    name = info.get("name", "model")
    body = f"# {name}\n\nA base language model trained from scratch with `pretrain`"
    body += f" ({model_type} architecture).\n\n" if model_type else ".\n\n"
    body += _data_section(info) + _training_section(info) + "## Evaluation\n\n"
    found = scores(info)
    body += _table(("dataset", "metric", "value", "from"), [(d, m, f"{v:.4f}", w) for d, m, v, w in found]) \
        if found else "No evaluation results were found beside the checkpoint.\n"
    return head + body


def write_card(ckpt: Path | None, out: Path, model_type: str = "") -> Path:
    path = Path(out) / "README.md"
    path.write_text(render(gather(Path(ckpt) if ckpt is not None else None), model_type), encoding="utf-8")
    return path


__all__ = ["gather", "render", "write_card"]
