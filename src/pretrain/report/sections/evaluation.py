"""Sections about evaluation: held-out loss and bits per byte, needle, samples, audits, scaling fits."""

from __future__ import annotations

from typing import Any

import numpy as np

from pretrain.report import plots
from pretrain.report.html import ImageSink, Section, cards, details, esc, fmt_num, kv_table, note, table
from pretrain.report.metrics import is_number
from pretrain.report.rundata import RunData
from pretrain.report.sections.common import count_of, num, pick

# -------------------------------------------------------------------------------------------- held-out


def heldout_parts(h: dict) -> tuple[dict[str, dict], dict, dict[str, Any]]:
    """(per-domain results, overall, unigram baseline per domain) from eval/heldout.json."""
    base_keys = ("unigram", "unigram_baseline", "baseline")
    if isinstance(h.get("domains"), dict):
        domains = {k: v for k, v in h["domains"].items() if isinstance(v, dict)}
    else:
        domains = {k: v for k, v in h.items() if isinstance(v, dict) and k != "overall" and k not in base_keys
                   and ("loss" in v or "bits_per_byte" in v)}
    base = pick(h, *base_keys) or {}
    if isinstance(base, dict) and isinstance(base.get("domains"), dict):
        base = base["domains"]
    overall = h.get("overall") if isinstance(h.get("overall"), dict) else {}
    return domains, overall, base if isinstance(base, dict) else {}


def bits_per_byte_of(v: Any) -> float | None:
    return num(v) if is_number(v) else count_of(v, "bits_per_byte", "bpb")


def heldout(run: RunData, sink: ImageSink) -> Section | None:
    h = run.heldout
    if not isinstance(h, dict):
        return None
    domains, overall, base = heldout_parts(h)
    if not domains and not overall:
        return None
    body, n_img = "", 0
    head = []
    for key, label, unit in (("bits_per_byte", "bits per byte", "all domains pooled"), ("loss", "loss", "nats / token"),
                             ("ppl", "perplexity", "per token")):
        if is_number(overall.get(key)):
            head.append((label, fmt_num(overall[key]), unit))
    if is_number(h.get("macro_bits_per_byte")):
        head.append(("macro bits/byte", fmt_num(h["macro_bits_per_byte"]), "mean over domains"))
    if head:
        body += cards(head)
    names = sorted(domains)
    model_bpb = [bits_per_byte_of(domains[d]) for d in names]
    groups = {"model": model_bpb}
    base_bpb = [bits_per_byte_of(base.get(d)) if base.get(d) is not None else bits_per_byte_of(domains[d].get("unigram"))
                for d in names]
    if any(b is not None for b in base_bpb):
        groups["unigram baseline"] = base_bpb
    if any(v is not None for v in model_bpb):
        png = plots.grouped_bars(names, groups, "Held-out bits per byte per domain (lower is better)", "bits / byte")
        if png:
            body += sink.img("heldout_bpb", png, "held-out bits per byte per domain")
            n_img += 1
    rows = []
    for d, b in zip(names, base_bpb, strict=True):
        r = domains[d]
        gain = f"{100 * (1 - bits_per_byte_of(r) / b):.1f}%" if b and bits_per_byte_of(r) is not None else ""
        rows.append([d, r.get("docs", ""), r.get("tokens", ""), r.get("bytes", ""), r.get("loss", ""),
                     r.get("ppl", ""), r.get("bits_per_byte", ""), b if b is not None else "", gain])
    if overall:
        rows.append(["overall", overall.get("docs", ""), overall.get("tokens", ""), overall.get("bytes", ""),
                     overall.get("loss", ""), overall.get("ppl", ""), overall.get("bits_per_byte", ""), "", ""])
    body += table(["domain", "docs", "tokens", "bytes", "loss", "ppl", "bits/byte", "unigram bits/byte",
                   "better than unigram"], rows)
    return Section("heldout", "Held-out evaluation", body, images=n_img,
                   subtitle="Loss, perplexity and bits per byte per domain on held-out documents, against a "
                            "unigram model of the training tokens.")


# ------------------------------------------------------------------------------------------- needle


def _depth_label(d: float) -> str:
    return f"{d:.0%}" if 0.0 <= d <= 1.0 else f"{d:g}"


def _needle_grid(n: dict) -> tuple[np.ndarray, list[str], list[str]] | None:
    """(matrix context length x depth, depth labels, length labels) from needle.json.

    The eval stage writes ``accuracy[length][depth]`` with ``lengths`` and ``depths``; a flat list of
    trials/results with (length, depth, score) is pivoted into the same grid.
    """
    grid = pick(n, "accuracy", "grid")
    if isinstance(grid, list) and grid and isinstance(grid[0], list):
        mat = np.array(grid, float)
        lengths, depths = n.get("lengths") or [], n.get("depths") or []
        if mat.ndim == 2 and len(lengths) == mat.shape[0] and len(depths) == mat.shape[1]:
            return mat, [_depth_label(float(d)) for d in depths], [fmt_num(int(x)) for x in lengths]
    results = pick(n, "trials", "results", "cells")
    if not isinstance(results, list):
        return None
    cells: dict[tuple[float, float], list[float]] = {}
    for r in results:
        if not isinstance(r, dict):
            continue
        length = pick(r, "length", "context_len", "context_length")
        depth = pick(r, "depth", "depth_pct", "position")
        score = pick(r, "exact", "score", "accuracy", "correct", "found")
        if is_number(length) and is_number(depth) and (is_number(score) or isinstance(score, bool)):
            cells.setdefault((float(length), float(depth)), []).append(float(score))
    if not cells:
        return None
    lengths = sorted({length for length, _ in cells})
    depths = sorted({d for _, d in cells})
    mat = np.full((len(lengths), len(depths)), np.nan)
    for (length, d), v in cells.items():
        mat[lengths.index(length), depths.index(d)] = float(np.mean(v))
    return mat, [_depth_label(d) for d in depths], [fmt_num(int(x)) for x in lengths]


def needle(run: RunData, sink: ImageSink) -> Section | None:
    n = run.needle
    body, n_img = "", 0
    grid = _needle_grid(n) if isinstance(n, dict) else None
    if grid is not None:
        title = "Needle in a haystack: exact retrieval by depth and context length"
        if is_number(n.get("overall_accuracy")):
            verdict = {True: ", PASS", False: ", FAIL"}.get(n.get("passed"), "")
            title += f"\n(overall {n['overall_accuracy']:.2f}{verdict})"
        png = plots.heatmap(grid[0], grid[1], grid[2], title, "needle depth (share of the context before it)",
                            "context length (tokens)", "exact-match rate", vmin=0.0, vmax=1.0)
        if png:
            body += sink.img("needle", png, "needle in a haystack heatmap")
            n_img += 1
    elif run.needle_png is not None:
        body += sink.file(run.needle_png, "needle in a haystack heatmap")
        n_img += 1
    if isinstance(n, dict):
        scalars = {k: v for k, v in n.items() if not isinstance(v, (list, dict))}
        if isinstance(n.get("lengths"), list):
            scalars["lengths"] = ", ".join(str(x) for x in n["lengths"])
        if scalars:
            body += kv_table(scalars)
    if not body:
        return None
    return Section("needle", "Needle in a haystack", body, images=n_img,
                   subtitle="Can the model retrieve a fact planted at a given depth of a long context?")


# --------------------------------------------------------------------------------------- audits, scaling


def audits(run: RunData, sink: ImageSink) -> Section | None:
    if not run.audits and not run.eval_images:
        return None
    body, n_img = "", 0
    for name, value in run.audits.items():
        body += f"<h3>{esc(name.replace('_', ' '))}</h3>"
        scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list))} \
            if isinstance(value, dict) else {}
        if scalars:
            body += kv_table(scalars, limit=20)
        body += details(f"All fields of eval/{name}.json", kv_table(value, limit=300))
    for p in run.eval_images:
        body += sink.file(p, f"eval/{p.name}")
        n_img += 1
    return Section("audits", "Evaluation audits", body, images=n_img,
                   subtitle="Contamination, memorization, benchmark and other evaluation files.")


def scaling(run: RunData, sink: ImageSink) -> Section | None:
    if not run.scaling and not run.scaling_images:
        return None
    body, n_img = "", 0
    for p in run.scaling_images:
        body += sink.file(p, f"scaling/{p.name}")
        n_img += 1
    for name, value in run.scaling.items():
        body += f"<h3>{esc(name.replace('_', ' '))}</h3>" + kv_table(value, limit=80)
    return Section("scaling", "Scaling fits", body, images=n_img)


# ------------------------------------------------------------------------------------------- samples


def _sample_list(s: Any) -> list[dict]:
    if isinstance(s, dict):
        inner = pick(s, "samples", "generations", "results")
        if isinstance(inner, list):
            s = inner
        else:  # {domain or prompt: text}
            return [{"domain": k, "text": v} if isinstance(v, str) else dict(v, domain=k)
                    for k, v in s.items() if isinstance(v, (str, dict))]
    return [x if isinstance(x, dict) else {"text": str(x)} for x in s] if isinstance(s, list) else []


def samples(run: RunData, sink: ImageSink) -> Section | None:
    items = _sample_list(run.samples)
    if not items:
        return None
    parts = []
    for it in items[:16]:
        prompt = str(pick(it, "prompt", "input") or "")
        label = " · ".join(str(it[k]) for k in ("domain", "step", "model", "temperature") if k in it)
        outs = [(k, str(it[k])) for k in ("greedy", "sampled") if isinstance(it.get(k), str)]
        if not outs:
            outs = [("", str(pick(it, "completion", "generated", "output", "text", "sample") or ""))]
        texts = "".join(f'<div class="muted">{esc(k)}</div>' * bool(k) + f'<div class="completion">{esc(t)}</div>'
                        for k, t in outs)
        parts.append(f'<div class="sample"><div class="muted">{esc(label)}</div>'
                     f'<div class="prompt">{esc(prompt)}</div>{texts}</div>')
    more = note(f"{len(items) - 16} more samples in eval/samples.json.") if len(items) > 16 else ""
    return Section("samples", "Generated samples", "".join(parts) + more,
                   subtitle="Prompt in bold, the model's continuations below (greedy and sampled when both were made).")
