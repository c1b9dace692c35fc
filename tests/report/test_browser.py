"""Render the report in headless Chromium and check every image decodes (skips when Chromium is absent).

The page itself has no JavaScript; the test appends a small check script to a copy of it, lets Chromium
load the page, and reads the verdict back from the dumped DOM. A deliberately broken image proves the
check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pretrain.report import build_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")]

CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 40));
  const out = document.createElement('div');
  out.id = 'imgcheck';
  out.textContent = 'images=' + imgs.length + ' broken=' + broken.length + ' [' + broken.join('|') + ']';
  document.body.appendChild(out);
});
</script>"""


def chromium_dump(page: Path, tmp: Path) -> str:
    """The DOM after load, from headless Chromium with the flags that keep it offline and quiet."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def image_verdict(html: str, tmp: Path) -> tuple[int, int, str]:
    """(images, broken images, alt texts of the broken ones) of a page, loaded from ``tmp``."""
    probe = tmp / "probe.html"
    probe.write_text(html.replace("</body>", CHECK + "</body>"))
    dom = chromium_dump(probe, tmp)
    m = re.search(r'<div id="imgcheck">images=(\d+) broken=(\d+) \[(.*?)\]</div>', dom)
    assert m, "the check script did not run: " + dom[-500:]
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_report_renders_without_broken_images(full_report: Path, tmp_path: Path):
    html = full_report.read_text()
    n, broken, which = image_verdict(html, tmp_path)
    assert n == html.count("<img") and n >= 15
    assert broken == 0, which


def test_check_detects_a_broken_image(full_report: Path, tmp_path: Path):
    html = full_report.read_text().replace("</main>", '<img src="data:image/png;base64,AAAA" alt="bad"></main>')
    n, broken, which = image_verdict(html, tmp_path)
    assert broken == 1 and which == "bad"


def test_images_beside_the_page_load(tmp_path: Path):
    from report_fakerun import write_run

    run = write_run(tmp_path / "run", parts=("heldout", "tokenizer"))
    page = build_report(run, tmp_path / "report", embed_images=False)
    n, broken, which = image_verdict(page.read_text(), tmp_path / "report")
    assert n == 2 and broken == 0, which
