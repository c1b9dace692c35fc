"""The provenance section: the run's manifest chain (each stage's inputs, outputs and code version, and
whether every hash still holds) and, for each loss spike or skipped batch, the documents of its step."""

from __future__ import annotations

from pretrain.report.html import ImageSink, Section, cards, details, note, table
from pretrain.report.rundata import RunData

_SPIKES = ("spike", "skip")


def provenance(run: RunData, sink: ImageSink) -> Section | None:
    from pretrain.lineage.steplog import LineageError
    from pretrain.lineage.verify import chain, check_link

    body = ""
    try:
        links = chain(run.root)
    except LineageError as exc:
        links = []
        body += note(f"No manifest chain: {exc}")
    broken: list[str] = []
    if links:
        rows = []
        for path, m in links:
            lines = check_link(path, m)
            broken += lines
            code = m.get("code") or {}
            version = f"{code.get('package', '?')}" + (f" @ {str(code['git'])[:10]}" if code.get("git") else "")
            n_in = sum(len(e.get("files", {})) for e in m.get("inputs", []))
            ok = f"{len(lines)} broken" if lines else "verified"
            rows.append([m.get("stage", "?"), str(path), n_in, len(m.get("outputs", {})), version,
                         m.get("seed") if m.get("seed") is not None else "", ok])
        body += cards([("manifests", str(len(links)), "stages on the chain"),
                       ("broken links", str(len(broken)), "pretrain verify")])
        body += table(["stage", "manifest", "input files", "output files", "code", "seed", "hashes"], rows,
                      numeric=False)
        if broken:
            body += details(f"{len(broken)} broken links", "<pre>" + "\n".join(broken[:100]) + "</pre>", open_=True)
    body += _spike_documents(run)
    if not links and "spike-docs" not in body:
        return None
    return Section("provenance", "Data provenance", body,
                   subtitle="The manifest chain from the raw inputs to the evaluation (pretrain verify), and the "
                            "documents behind each spike (pretrain trace step N RUN).")


def _spike_documents(run: RunData) -> str:
    out = ""
    for e in run.metrics.events:
        if e.get("event") not in _SPIKES or not e.get("lineage"):
            continue
        rows = [[x[2] if len(x) > 2 else "", x[3] if len(x) > 3 else x[0], x[1]] for x in e["lineage"]]
        out += details(f"step {e.get('step')}: {e.get('event')}, {len(rows)} documents listed "
                       f"(all of them: pretrain trace step {e.get('step')} {run.root})",
                       table(["id", "source", "index in shard"], rows, numeric=False))
    return f'<div class="spike-docs"><h3>Documents of spiking steps</h3>{out}</div>' if out else ""
