"""Every command that writes proves its output writable before any work (issue 32): on a read-only file
system each stops in one line naming the flag, the path and the reason, with exit status 2."""

from __future__ import annotations

import pytest

CASES = {
    "corpus builtin": ["corpus", "builtin", "--out", "{ro}"],
    "tokenizer train": ["tokenizer", "train", "curated", "--out", "{ro}"],
    "tokenize": ["tokenize", "curated", "--out", "{ro}"],
    "mixture doremi": ["mixture", "doremi", "--out", "{ro}"],
    "report": ["report", "runs/x", "--out", "{ro}"],
    "scaling fit": ["scaling", "fit", "points.csv", "--out", "{ro}"],
    "scaling sweep": ["scaling", "sweep", "tiny", "--out", "{ro}"],
    "ablate": ["ablate", "tiny", "--vary", "train.lr=1e-3,2e-3", "--out", "{ro}"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_on_a_readonly_file_system_is_one_line(name, cli, readonly_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = readonly_dir / "out"
    rc, out, err = cli(*[a.format(ro=target) for a in CASES[name]])
    assert (rc, err) == (2, f"error: --out {target} is not writable: read-only file system\n"), out
