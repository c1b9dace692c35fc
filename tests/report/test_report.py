"""build_report on recorded tiny runs: every section and image present, partial runs degrade cleanly."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from report_fakerun import write_run

from pretrain.report import build_report
from pretrain.report.html import fmt_num

# Section id -> images it must hold when every artifact is present.
FULL_SECTIONS = {
    "summary": 0, "loss": 3, "heldout": 1, "data": 3, "tokenizer": 1, "mixture": 1, "optimisation": 1,
    "interventions": 0, "moe": 2, "needle": 1, "samples": 0, "audits": 1, "scaling": 1,
    "provenance": 0,  # the fixture's spike lists its documents; it has no stage manifests
}


def sections_of(html: str) -> dict[str, str]:
    """Section id -> its HTML."""
    parts = re.findall(r'<section id="([\w-]+)"[^>]*>(.*?)</section>', html, flags=re.S)
    return dict(parts)


def images_of(html: str) -> list[bytes]:
    """Decoded bytes of every embedded image (all must be PNGs)."""
    srcs = re.findall(r'<img src="([^"]+)"', html)
    out = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        out.append(base64.b64decode(src.split(",", 1)[1]))
    return out


@pytest.fixture(scope="module")
def full_html(full_report: Path) -> str:
    return full_report.read_text()


def test_full_report_has_every_section_and_image(full_run: Path, full_html: str):
    assert (full_run / "report" / "index.html").is_file()
    secs = sections_of(full_html)
    assert list(secs) == list(FULL_SECTIONS), "sections missing or out of order"
    for sid, n in FULL_SECTIONS.items():
        assert secs[sid].count("<img") == n, f"section {sid}: expected {n} images"
    for png in images_of(full_html):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert 'id="warnings"' not in full_html  # a complete, well-formed run leaves nothing skipped
    # Self-contained: no scripts, no external resources.
    assert "<script" not in full_html.lower().replace("&lt;script", "")
    assert not re.search(r'(src|href)="(https?:)?//', full_html)


def test_full_report_content(full_html: str):
    secs = sections_of(full_html)
    assert "131,392" in secs["summary"]  # parameters from the trainer's start event
    assert "measured fp32 matmul" in secs["summary"]  # peak FLOPs source reported with the hardware
    assert "bulk (step 0) -&gt; anneal (step 96)" in secs["summary"]
    assert "Constant over the run: batch = 16, seq_len = 64" in secs["optimisation"]
    assert "length:too_short" in secs["data"] and "minhash_dedup:duplicate" in secs["data"]
    assert "stdlib:keyword.py" in secs["data"]  # removed samples recorded in stats.json, with their detail
    assert "header says" in secs["data"]
    assert "50.0%" in secs["heldout"]  # code: 1.1 vs unigram 2.2 bits/byte
    assert "exact-match" in secs["needle"] or "overall_accuracy" in secs["needle"]
    assert "rewind" in secs["interventions"] and "to step_00000050" in secs["interventions"]
    assert "shard_00000.bin" not in secs["interventions"]  # lineage lists are not dumped into the table
    # Generated text is escaped, never interpreted.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in secs["samples"]
    assert "<script>" not in secs["samples"]


@pytest.mark.parametrize(
    ("parts", "present", "absent"),
    [
        (("config",), {"summary", "mixture"}, {"loss", "data", "heldout", "moe", "needle", "optimisation"}),
        (("curated",), {"data"}, {"summary", "loss", "tokenizer"}),
        (("config", "metrics"), {"summary", "loss", "optimisation", "mixture", "interventions"},
         {"moe", "heldout", "data", "needle", "samples"}),
        (("heldout", "needle", "samples"), {"heldout", "needle", "samples"}, {"loss", "data", "optimisation"}),
    ],
)
def test_partial_runs_omit_missing_sections(tmp_path: Path, parts, present, absent):
    run = write_run(tmp_path / "run", parts=parts, steps=20)
    html = build_report(run).read_text()
    secs = set(sections_of(html))
    assert present <= secs, f"missing {present - secs}"
    assert not (absent & secs), f"unexpected {absent & secs}"
    assert "warnings" not in secs
    images_of(html)  # every image decodes as a PNG


def test_token_shards_give_compression_without_tokenizer_stats(tmp_path: Path):
    html = build_report(write_run(tmp_path / "run", parts=("tokens",))).read_text()
    tok = sections_of(html)["tokenizer"]
    assert tok.count("<img") == 1 and "Token shards" in tok
    assert "<td>train</td><td>code</td>" in tok and ">3.2<" in tok  # 80,000 bytes / 25,000 tokens


def test_other_eval_fields_get_panels(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"type": "eval", "step": 10, "val_loss": 4.0}, {"type": "eval", "step": 20, "val_loss": 3.5},
            {"type": "eval", "step": 20, "needle_accuracy": 0.4, "needle_seq_len": 128, "model": "gate"}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loss = sections_of(build_report(run).read_text())["loss"]
    assert "Other evaluation metrics" in loss and loss.count("<img") == 2


def test_mixture_from_config_schedule_when_not_logged(tmp_path: Path):
    html = build_report(write_run(tmp_path / "run", parts=("config",))).read_text()
    mix = sections_of(html)["mixture"]
    assert mix.count("<img") == 1 and "data.mixture (schedule" in mix


def test_mixture_anneal_weights_over_token_proportions(tmp_path: Path):
    from pretrain.config import resolve, save

    run = write_run(tmp_path / "run", parts=("tokens",))
    cfg = resolve("tiny", ["data.mixture.anneal_start=0.8"])
    cfg.data.mixture.anneal_weights = {"docs": 1.0}
    save(cfg, run / "config.toml")
    from pretrain.report.rundata import load_run
    from pretrain.report.sections.data import _schedule_weights

    steps, w = _schedule_weights(load_run(run))
    i_early, i_late = np.searchsorted(steps, 0.5 * steps[-1]), len(steps) - 1
    assert w["code"][i_early] == pytest.approx(1 / 3) and w["docs"][i_late] == pytest.approx(1.0)
    assert w["code"][i_late] == pytest.approx(0.0)


def test_truncated_and_bad_metrics_lines_are_reported_not_fatal(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 6):
            f.write(json.dumps({"type": "train", "step": step, "loss": 5.0 - step / 10, "lr": 1e-3}) + "\n")
        f.write('{"type": "train", "loss": 1.0}\n')  # no step
        f.write('{"type": "train", "step": 6, "loss": 2.')  # killed mid-write
    html = build_report(run).read_text()
    secs = sections_of(html)
    assert "loss" in secs and "warnings" in secs
    n_lines = len((run / "metrics.jsonl").read_text().splitlines())
    assert f"metrics.jsonl:{n_lines}: not JSON" in secs["warnings"]
    assert "without a numeric &#x27;step&#x27;" in secs["warnings"]


def test_corrupt_json_artifact_is_named_and_skipped(tmp_path: Path):
    run = write_run(tmp_path / "run", parts=("config", "heldout", "tokenizer"))
    (run / "eval" / "heldout.json").write_text("{not json")
    html = build_report(run).read_text()
    secs = sections_of(html)
    assert "heldout" not in secs and "tokenizer" in secs
    assert "heldout.json: not valid JSON" in secs["warnings"]


def test_unexpected_shapes_do_not_break_the_page(tmp_path: Path):
    """Producers may change formats: odd values leave a section out (or show it raw), never crash."""
    run = write_run(tmp_path / "run", parts=("config",))
    (run / "metrics.jsonl").write_text('{"type": "train", "step": 1, "loss": "nan", "lr": null}\n'
                                       '{"type": "event", "event": "spike"}\n[1, 2]\n')
    (run / "curated").mkdir()
    (run / "curated" / "stats.json").write_text(json.dumps({"documents_in": "many", "per_step": [1, "x", None]}))
    (run / "eval").mkdir()
    (run / "eval" / "needle.json").write_text(json.dumps({"accuracy": [[0.5]], "lengths": [], "depths": "?"}))
    (run / "eval" / "samples.json").write_text(json.dumps({"samples": "not a list"}))
    path = build_report(run)
    secs = sections_of(path.read_text())
    assert "summary" in secs and "interventions" in secs
    assert "loss" not in secs  # the only loss is NaN: nothing to plot
    assert "not a JSON object" in secs["warnings"]


def test_empty_and_missing_run_dirs(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    html = build_report(tmp_path / "empty").read_text()
    assert "Nothing recorded yet" in html
    with pytest.raises(FileNotFoundError, match="nope"):
        build_report(tmp_path / "nope")


def test_images_beside_the_page(tmp_path: Path):
    run = write_run(tmp_path / "run", parts=("config", "heldout", "tokenizer"))
    out = tmp_path / "out"
    html = build_report(run, out, embed_images=False).read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 3  # mixture, heldout bars, tokenizer bars
    for src in srcs:
        assert not src.startswith("data:") and (out / src).read_bytes()[:4] == b"\x89PNG"


def test_rewound_steps_keep_the_replayed_values(tmp_path: Path):
    from pretrain.report.metrics import parse_metrics

    lines = [json.dumps({"type": "train", "step": s, "loss": 5.0 - s / 10}) for s in range(1, 8)]
    lines += [json.dumps({"type": "train", "step": s, "loss": 1.0}) for s in (5, 6, 7, 8)]  # replay after rewind
    m = parse_metrics(lines)
    steps, losses = m.series("train", "loss")
    assert list(steps) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(losses[4:]) == [1.0, 1.0, 1.0, 1.0]


def test_fmt_num():
    assert fmt_num(1234567) == "1,234,567"
    assert fmt_num(12_000_000) == "12.0M"
    assert fmt_num(1e11) == "1.000e+11"  # a FLOP/s float, not a count
    assert fmt_num(11934.2) == "11,934"
    assert fmt_num(0.0003) == "3.000e-04"
    assert fmt_num(2.98412) == "2.984"
    assert fmt_num("<b>") == "&lt;b&gt;"



def test_funnel_from_dict_steps_and_removed_files(tmp_path: Path):
    """Another stats.json shape (steps as a dict, plain-int reasons) and samples read from removed/."""
    run = write_run(tmp_path / "run", parts=("curated",))
    stats = {"documents_in": 1000, "kept": 800, "removed": 190, "quarantined": 10,
             "per_step": {"exact_dedup": {"in": 990, "removed": 40}, "quality": {"in": 950, "removed": 150}},
             "per_reason": {"duplicate": 40, "too_short": 150},
             "per_domain": {"code": {"documents_in": 500, "kept": 400, "removed": 100}}}
    (run / "curated" / "stats.json").write_text(json.dumps(stats))
    secs = sections_of(build_report(run).read_text())
    data = secs["data"]
    assert data.count("<img") == 3 and "warnings" not in secs
    assert "15.79%" in data  # quality removed 150 of 950
    assert "corpus/code.jsonl.zst:1" in data and "&lt;b&gt;not html&lt;/b&gt;" in data
    assert "not valid UTF-8" in data  # quarantine samples
