"""HTML extraction: no Markdown image/table syntax leaks into the text, the resiliparse extractor, and a
per-page time limit whose pages are counted under their own reason and kept in removed/."""

from __future__ import annotations

from pathlib import Path

import pytest
from curate_helpers import read_records

from pretrain.configlib import ConfigError, validate
from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.io.extract import html_to_text, markdown_to_text

PAGE = """<html><head><title>T</title></head><body><nav><a href="/">Home</a> | <a href="/x">Next</a></nav>
<article><h1>Measurements of the river</h1>
<p>The survey team measured the depth of the river at twelve stations along its course last spring.</p>
<p>Station map: <img src="map(1).png" alt="Map of [all] stations"> shown above.</p>
<img src="chart.png" alt=""><img src="c.png" alt="Figure 2: depth by station">
<table><tr><th>Station</th><th>Depth</th></tr><tr><td>North bridge</td><td>4.2 m</td></tr>
<tr><td>Mill weir</td><td>1.8 m</td></tr></table>
<p>The deepest point was found below the north bridge, where the current is strongest in winter.</p>
</article><footer>Copyright 2024</footer></body></html>"""


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_no_markdown_leaks_and_alt_text_kept(extractor):
    text = html_to_text(PAGE, extractor)
    assert "![" not in text and "](" not in text and "|---" not in text and "| Station" not in text
    assert "Map of [all] stations" in text and "Figure 2: depth by station" in text
    assert "North bridge" in text and "4.2 m" in text and "twelve stations" in text
    assert "Home" not in text  # navigation is boilerplate


def test_markdown_to_text_cases():
    assert markdown_to_text(r"see ![a \[b\] c](<x (1).png>) here") == "see a [b] c here"
    assert markdown_to_text('![](y.png "title") and ![z](p(q).png)') == " and z"
    assert markdown_to_text("| a | b \\| c |\n|---|:---:|\n| 1 | 2 |") == "a\tb | c\n1\t2"
    assert markdown_to_text("a | b stays as it is") == "a | b stays as it is"


def test_resiliparse_in_pipeline_and_timeout_counted(tmp_path: Path, prose):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "small.html").write_text(PAGE)
    paras = "".join(f"<div><p>{prose(i, 6)}</p><span><b>{i}</b></span></div>" for i in range(3000))
    (raw / "huge.html").write_text(f"<html><body><article>{paras}</article></body></html>")
    # the huge page takes trafilatura over a second even on an idle machine: far over 0.05 s
    steps = [{"type": "extract", "timeout": 0.05}, {"type": "length", "min_chars": 20}]
    stats = curate([raw / "huge.html"], tmp_path / "t", CurateConfig(steps=steps), workers=1, progress=False)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"] == 1
    ex = stats["steps"][0]
    assert ex["reasons"]["extract_timeout"]["documents"] == 1 and ex["counters"]["timeouts"] == 1
    (gone,) = read_records(tmp_path / "t" / "removed")
    assert gone["source"].endswith("huge.html") and gone["meta"]["reason"] == "extract_timeout"
    assert gone["text"].startswith("<html>")  # the page itself is kept, never lost
    steps = [{"type": "extract", "extractor": "resiliparse"}, {"type": "length", "min_chars": 20}]
    stats = curate([raw], tmp_path / "r", CurateConfig(steps=steps), workers=1, progress=False)
    assert stats["kept"] == 2
    texts = {Path(r["source"]).name: r["text"] for r in read_records(tmp_path / "r" / "data")}
    assert "deepest point" in texts["small.html"] and "<p>" not in texts["huge.html"]


def test_extractor_config_errors():
    with pytest.raises(ConfigError, match=r"steps\[0\]\.extractor"):
        validate(CurateConfig(steps=[{"type": "extract", "extractor": "magic"}]))
    with pytest.raises(ConfigError, match=r"steps\[0\]\.timeout"):
        validate(CurateConfig(steps=[{"type": "extract", "timeout": -1}]))
