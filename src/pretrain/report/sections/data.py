"""Sections about the data: the curation funnel, tokenizer and token shard statistics, mixture weights."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from pretrain.report import plots
from pretrain.report.html import (
    ImageSink,
    Raw,
    Section,
    cards,
    details,
    esc,
    fmt_duration,
    fmt_num,
    kv_table,
    note,
    table,
)
from pretrain.report.metrics import is_number
from pretrain.report.rundata import RunData
from pretrain.report.sections.common import count_of, named_entries, num, pick

# ------------------------------------------------------------------------------------------ data funnel


def _step_table(st: dict) -> tuple[list[str], list[float], list[float], list[list], Counter[str], float | None]:
    """(labels, documents kept, documents removed) per funnel stage, table rows, per-step reasons, and the
    documents left after the last step (None when steps give no counts)."""
    labels, kept, removed_l, rows = [], [], [], []
    reasons: Counter[str] = Counter()
    total_in = num(st.get("documents_in"))
    left = total_in
    if total_in is not None:
        quarantined = num(st.get("quarantined")) or 0.0
        labels.append("read (unreadable quarantined)" if quarantined else "read")
        kept.append(total_in - quarantined)
        removed_l.append(quarantined)
        left = total_in - quarantined
    for name, entry in named_entries(pick(st, "steps", "per_step", "by_step")):
        removed = count_of(entry, "removed", "dropped", "documents_removed")
        seen = count_of(entry, "documents_in", "in", "seen")
        seen = seen if seen is not None else left
        if removed is not None and seen is not None:
            labels.append(name)
            kept.append(seen - removed)
            removed_l.append(removed)
            left = seen - removed
        e = entry if isinstance(entry, dict) else {}
        rows.append([name, e.get("type", ""), seen if seen is not None else "", removed if removed is not None else "",
                     f"{100 * removed / seen:.2f}%" if removed is not None and seen else "",
                     e.get("modified", ""),
                     e["bytes_in"] / 1e6 if is_number(e.get("bytes_in")) else "",
                     e["bytes_out"] / 1e6 if is_number(e.get("bytes_out")) else ""])
        for reason, n in (pick(e, "reasons", "per_reason", "by_reason") or {}).items():
            c = count_of(n, "documents", "count", "removed")
            if c is not None:
                reasons[f"{name}:{reason}"] += c
    return labels, kept, removed_l, rows, reasons, left


def funnel(run: RunData, sink: ImageSink) -> Section | None:
    st = run.curated
    if not isinstance(st, dict):
        return None
    body = _funnel_headline(st)
    steps, n_steps, reasons = _funnel_steps(st, sink)
    why, n_why = _funnel_reasons(st, reasons, sink)
    domains, n_domains = _funnel_domains(st, sink)
    body += steps + why + domains
    samples = _stats_samples(st) or run.removed_samples
    if samples:
        body += "<h3>Sample removed documents</h3>" + _doc_samples(samples, per_reason=2, limit=12)
    if run.quarantine_samples:
        body += details(f"Sample quarantined records ({len(run.quarantine_samples)} shown)",
                        _doc_samples(run.quarantine_samples, per_reason=3, limit=6))
    other = {k: v for k, v in st.items() if k not in ("per_step", "steps", "by_step", "per_reason", "reasons",
                                                      "by_reason", "per_domain", "domains", "by_domain", "samples")}
    if other:
        body += details("All curation statistics", kv_table(other))
    return Section("data", "Data funnel", body, subtitle="Curation: documents read, removed by each filter "
                   "and why, kept per domain.", images=n_steps + n_why + n_domains)


def _funnel_headline(st: dict) -> str:
    """Cards: documents in / kept / removed / quarantined, the kept share, bytes and time."""
    headline = [(k.replace("_", " "), fmt_num(st[k]), "documents")
                for k in ("documents_in", "kept", "removed", "quarantined") if is_number(st.get(k))]
    if is_number(st.get("documents_in")) and is_number(st.get("kept")) and st["documents_in"]:
        headline.append(("kept share", f"{100 * st['kept'] / st['documents_in']:.1f}%", "of documents read"))
    for k in ("bytes_in", "bytes_kept"):
        if is_number(st.get(k)):
            headline.append((k.replace("_", " "), f"{st[k] / 1e6:,.1f} MB", "UTF-8 text"))
    if is_number(st.get("seconds")):
        headline.append(("time", fmt_duration(st["seconds"]), f"{st.get('workers', '?')} workers"))
    return cards(headline) if headline else ""


def _funnel_steps(st: dict, sink: ImageSink) -> tuple[str, int, Counter]:
    """The per-step chart and table: (html, images, removals by "step:reason" from the steps)."""
    body, n_img = "", 0
    labels, kept, removed, rows, reasons, left = _step_table(st)
    if len(labels) > 1:
        png = plots.funnel_chart(labels, kept, removed, "Curation funnel: documents entering each step",
                                 "documents")
        if png:
            body += sink.img("funnel_steps", png, "documents kept and removed by each curation step")
            n_img += 1
        if is_number(st.get("kept")) and left is not None and abs(left - st["kept"]) > 0.5:
            body += note(f"Per-step removals leave {fmt_num(int(left))} documents but kept = "
                         f"{fmt_num(int(st['kept']))}; some steps report no removal count.")
    if rows:
        body += "<h3>Per step</h3>" + table(["step", "type", "documents in", "removed", "removed share", "modified",
                                             "MB in", "MB out"], rows)
    return body, n_img, reasons


def _funnel_reasons(st: dict, reasons: Counter, sink: ImageSink) -> tuple[str, int]:
    """Removals by reason (the top-level breakdown when stats.json has one) and quarantine reasons."""
    body, n_img = "", 0
    top_reasons = pick(st, "reasons", "per_reason", "by_reason")
    if isinstance(top_reasons, dict) and top_reasons:
        reasons = Counter()  # the top-level breakdown is authoritative when present
        for reason, n in top_reasons.items():
            c = count_of(n, "documents", "count", "removed")
            if c is not None:
                reasons[str(reason)] += c
    if reasons:
        top = reasons.most_common(25)
        png = plots.hbar_chart([r for r, _ in top], [c for _, c in top], "Removed documents by step and reason",
                               "documents removed", colors=[plots.color(1)] * len(top))
        if png:
            body += sink.img("funnel_reasons", png, "removed documents by reason")
            n_img += 1
        body += details(f"Removal reasons ({len(reasons)})", table(["step:reason", "documents"],
                                                                    [[r, c] for r, c in reasons.most_common()]))
    quarantine = pick(st, "quarantine_reasons") or {}
    if isinstance(quarantine, dict) and quarantine:
        body += "<h3>Quarantined (unreadable) records by reason</h3>" + table(
            ["reason", "records"], [[r, count_of(n, "documents", "count") or ""] for r, n in quarantine.items()])
    return body, n_img


def _funnel_domains(st: dict, sink: ImageSink) -> tuple[str, int]:
    """Kept and removed per domain: a stacked chart and a table of every numeric per-domain field."""
    domains = [(n, e) for n, e in named_entries(pick(st, "domains", "per_domain", "by_domain")) if isinstance(e, dict)]
    if not domains:
        return "", 0
    body, n_img = "", 0
    parts = {label: [count_of(e, *fields) or 0.0 for _, e in domains]
             for label, fields in (("kept", ("kept", "documents_kept")), ("removed", ("removed",)),
                                   ("quarantined", ("quarantined",)))}
    parts = {k: v for k, v in parts.items() if any(v)}
    if parts:
        png = plots.grouped_bars([n for n, _ in domains], parts, "Documents kept and removed per domain",
                                 "documents", stacked=True)
        if png:
            body += sink.img("funnel_domains", png, "documents kept and removed per domain")
            n_img += 1
    cols = [c for c in ("documents_in", "kept", "removed", "quarantined", "bytes_in", "bytes_kept")
            if any(is_number(e.get(c)) for _, e in domains)]
    cols += sorted({k for _, e in domains for k, v in e.items() if is_number(v)} - set(cols))

    def cell(e: dict, c: str) -> Any:  # bytes in MB so a column never mixes "10.2M" and "9,810,226"
        v = e.get(c, "")
        return round(v / 1e6, 3) if c.startswith("bytes") and is_number(v) else v

    heads = [f"MB {c[len('bytes_'):]}" if c.startswith("bytes_") else c.replace("_", " ") for c in cols]
    body += "<h3>Per domain</h3>" + table(["domain", *heads], [[n, *[cell(e, c) for c in cols]] for n, e in domains])
    return body, n_img


def _stats_samples(st: dict) -> list[dict]:
    """Removed-document samples kept in stats.json (``samples``: "step:reason" -> records) as records
    shaped like removed/ lines, so one renderer serves both."""
    out = []
    samples = st.get("samples")
    if isinstance(samples, dict):
        for key, recs in samples.items():
            step, _, reason = str(key).partition(":")
            for r in recs if isinstance(recs, list) else []:
                if isinstance(r, dict):
                    meta = {"removed_by": step, "reason": reason + (f" ({r['detail']})" if r.get("detail") else "")}
                    out.append({**r, "meta": meta})
    return out


def _doc_samples(records: list[dict], per_reason: int, limit: int) -> str:
    """A few records per removal reason, text shortened, with where they came from."""
    by_reason: dict[str, int] = {}
    rows = []
    for rec in records:
        meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
        reason = f"{meta.get('removed_by', '')} {meta.get('reason', '')}".strip() or "(no reason)"
        if by_reason.get(reason, 0) >= per_reason:
            continue
        by_reason[reason] = by_reason.get(reason, 0) + 1
        text = str(rec.get("text", rec.get("raw", "")))
        short = text[:400] + (f" ... ({len(text)} chars)" if len(text) > 400 else "")
        rows.append([reason, rec.get("domain", ""), Raw(f"<code>{esc(rec.get('source', ''))}</code>"),
                     Raw(f'<div class="doctext">{esc(short)}</div>')])
        if len(rows) >= limit:
            break
    return table(["reason", "domain", "source", "text"], rows, numeric=False)


# --------------------------------------------------------------------------------------------- tokenizer


def tokenizer(run: RunData, sink: ImageSink) -> Section | None:
    st, ts = run.tokenizer_stats, run.token_stats
    if not isinstance(st, dict) and not isinstance(ts, dict):
        return None
    body, n_img = "", 0
    if isinstance(st, dict):
        head = [(k.replace("_", " "), fmt_num(st[k]), "") for k in ("vocab_size",) if is_number(st.get(k))]
        overall = st.get("overall") if isinstance(st.get("overall"), dict) else {}
        if is_number(overall.get("bytes_per_token")):
            head.append(("bytes / token", fmt_num(overall["bytes_per_token"], 3), "all domains, held-out"))
        if head:
            body += cards(head)
        domains = [(n, e) for n, e in named_entries(pick(st, "domains", "per_domain")) if isinstance(e, dict)]
        bpt = [(n, e["bytes_per_token"]) for n, e in domains if is_number(e.get("bytes_per_token"))]
        if bpt:
            png = plots.hbar_chart([n for n, _ in bpt], [v for _, v in bpt],
                                   "Tokenizer compression per domain (higher = fewer tokens per text)",
                                   "UTF-8 bytes per token", logx=False)
            if png:
                body += sink.img("tokenizer_bytes_per_token", png, "bytes per token per domain")
                n_img += 1
        if domains:
            cols = [c for c in ("documents", "bytes", "tokens", "bytes_per_token", "other_bytes_per_token", "ratio")
                    if any(c in e for _, e in domains)]
            body += table(["domain", *cols], [[n, *[e.get(c, "") for c in cols]] for n, e in domains])
        rest = {k: v for k, v in st.items() if k not in ("domains", "per_domain")}
        if rest:
            body += details("All tokenizer statistics", kv_table(rest))
    if isinstance(ts, dict):
        body += "<h3>Token shards</h3>" + _token_shards(ts, sink, chart=n_img == 0)
        n_img = body.count("<img")
    return Section("tokenizer", "Tokenizer and token shards", body, images=n_img)


def _token_shards(ts: dict, sink: ImageSink, chart: bool) -> str:
    """tokens/stats.json: headline counts and a split x domain table (``splits`` -> split -> domain -> counts).

    Its bytes and tokens give the training-set compression per domain, drawn when the tokenizer's own
    held-out statistics are missing (``chart``)."""
    head = [(label, fmt_num(ts[k]) if k != "mb_per_s" else f"{ts[k]:.2f}", note_)
            for k, label, note_ in (("tokens", "tokens", "all splits"), ("documents", "documents", "all splits"),
                                    ("mb_per_s", "MB/s", "tokenization throughput")) if is_number(ts.get(k))]
    body = cards(head) if head else ""
    splits = ts.get("splits")
    rows, bpt = [], []
    if isinstance(splits, dict):
        for split, doms in splits.items():
            for d, e in (doms.items() if isinstance(doms, dict) else []):
                if not isinstance(e, dict):
                    continue
                ratio = e["bytes"] / e["tokens"] if is_number(e.get("bytes")) and e.get("tokens") else None
                rows.append([split, d, e.get("documents", ""), e.get("tokens", ""), e.get("bytes", ""),
                             ratio if ratio is not None else "", e.get("dtype", "")])
                if split == "train" and ratio is not None:
                    bpt.append((d, ratio))
    if chart and bpt:
        png = plots.hbar_chart([d for d, _ in bpt], [v for _, v in bpt],
                               "Compression of the training shards per domain", "UTF-8 bytes per token", logx=False)
        if png:
            body += sink.img("shards_bytes_per_token", png, "bytes per token of the training shards")
    if rows:
        body += table(["split", "domain", "documents", "tokens", "bytes", "bytes/token", "dtype"], rows)
    rest = {k: v for k, v in ts.items() if k != "splits"}
    return body + (details("All token shard statistics", kv_table(rest if rows else ts, limit=80)) if rest else "")


# ---------------------------------------------------------------------------------------------- mixture


def _token_shares(run: RunData) -> dict[str, float]:
    """Training tokens per domain from tokens/stats.json (the default mixture is proportional to them)."""
    train = ((run.token_stats or {}).get("splits") or {}).get("train") if isinstance(run.token_stats, dict) else None
    if not isinstance(train, dict):
        return {}
    return {d: float(e["tokens"]) for d, e in train.items() if isinstance(e, dict) and is_number(e.get("tokens"))}


def _schedule_weights(run: RunData) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The configured mixture over steps: the piecewise-linear ``schedule``, or the static (or token-
    proportional) weights switching to ``anneal_weights`` at ``anneal_start``. None when static only."""
    mix = run.cfg("data.mixture") or {}
    total = num(run.cfg("train.max_steps"))
    if not isinstance(mix, dict) or not total:
        return None
    points = [(float(p.get("at", 0.0)), p.get("weights") or {}) for p in mix.get("schedule") or []
              if isinstance(p, dict)]
    points = [(a, w) for a, w in points if isinstance(w, dict) and w]
    anneal, start = mix.get("anneal_weights") or {}, num(mix.get("anneal_start"))
    if len(points) < 2 and anneal and start is not None and start < 1.0:
        base = mix.get("weights") or _token_shares(run)
        if not base:
            return None
        eps = 1e-6
        points = [(0.0, base), (max(start - eps, 0.0), base), (start, anneal), (1.0, anneal)]
    if len(points) < 2:
        return None
    points.sort(key=lambda t: t[0])
    domains = sorted({d for _, w in points for d in w})
    at = np.array([a for a, _ in points])
    prog = np.unique(np.concatenate([np.linspace(0.0, 1.0, 101), at]))
    raw = {}
    for d in domains:
        # Each point's weights are normalised on their own, as the loader does, before interpolating.
        ys = [float(w.get(d, 0.0)) / (sum(float(v) for v in w.values()) or 1.0) for _, w in points]
        raw[d] = np.interp(prog, at, ys)
    norm = np.maximum(sum(raw.values()), 1e-12)
    return prog * total, {d: v / norm for d, v in raw.items()}


def mixture(run: RunData, sink: ImageSink) -> Section | None:
    m = run.metrics
    keys = m.keys("train", "mix/")
    stages = m.stages()
    if keys:
        xs = None
        parts = {}
        for k in keys:
            x, y = m.series("train", k)
            if xs is None or len(x) > len(xs):
                xs = x
            parts[k[len("mix/"):]] = (x, y)
        aligned = {d: np.interp(xs, x, y) if len(x) else np.zeros_like(xs) for d, (x, y) in parts.items()}
        png = plots.stack_chart(xs, aligned, "Mixture weights over training (sampled share per domain)",
                                "optimizer step", "weight", stages)
        sub = "Logged by the loader: the probability of drawing a row from each domain."
    else:
        sched = _schedule_weights(run)
        static = run.cfg("data.mixture.weights") or {}
        if sched is None and not static and _token_shares(run):
            static = _token_shares(run)  # the default: proportional to each domain's tokens
        if sched is None and not static:
            return None
        if sched is None:
            total = sum(float(v) for v in static.values()) or 1.0
            rows = [[d, float(v) / total] for d, v in static.items()]
            return Section("mixture", "Mixture weights", table(["domain", "weight (normalised)"], rows),
                           subtitle="Static weights (config data.mixture.weights, or proportional to training "
                                    "tokens); no per-step weights were logged.")
        png = plots.stack_chart(sched[0], sched[1], "Configured mixture curriculum", "optimizer step",
                                "weight", stages)
        sub = ("From the config's data.mixture (schedule, or weights then anneal_weights); no per-step weights "
               "were logged.")
    if png is None:
        return None
    return Section("mixture", "Mixture weights", sink.img("mixture", png, "mixture weights over training"),
                   subtitle=sub, images=1)


