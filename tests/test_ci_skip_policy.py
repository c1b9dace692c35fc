"""The suite-wide skip policy (tests/conftest.py): under CI=true a skip fails, except a gpu test's."""

from __future__ import annotations

from pathlib import Path

import pytest

POLICY = (Path(__file__).parent / "conftest.py").read_text()
TESTS = """
import pytest

def test_needs_a_tool():
    pytest.skip("some-tool not installed")

@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("no CUDA device")

def test_plain():
    assert True
"""


@pytest.fixture
def sub(pytester):
    pytester.makeconftest(POLICY.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    pytester.makepyfile(test_sub=TESTS)
    return pytester


def test_skip_fails_under_ci_except_gpu(sub, monkeypatch):
    monkeypatch.setenv("CI", "true")
    res = sub.runpytest_subprocess("-q")
    res.assert_outcomes(passed=1, failed=1, skipped=1)
    res.stdout.fnmatch_lines(["*skipped under CI=true*some-tool not installed*"])


def test_skip_is_a_skip_outside_ci(sub, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    sub.runpytest_subprocess("-q").assert_outcomes(passed=1, skipped=2)
