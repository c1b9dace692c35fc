"""Suite-wide policy: under CI (CI=true) a test that skips has not run, so it fails the run.

A skip is how a test says a tool or package is missing (Chromium, lm-eval, transformers ...). On a
developer's machine that is fine: the skip names what to install. In CI the install step is meant
to provide everything, so a skip there would hide a missing install line behind a green run. The
one exception is hardware CI never has: tests marked ``gpu`` may skip anywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The helper modules shared by the tests (tiny configs, toy models, callbacks and optimizers named by
# import path) live in tests/helpers/ and are imported by name: the suite runs with
# --import-mode=importlib, and torchrun's and Ray's workers get this sys.path as their PYTHONPATH.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (_ci() and report.skipped) or item.get_closest_marker("gpu") is not None:
        return
    if getattr(report, "wasxfail", None) is not None:  # an expected failure is not a missing tool
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true (a skip is a test that did not run): {reason}"


pytest_plugins = ["pytester"]  # tests/test_ci_skip_policy.py runs this policy in a sub-run


# --- Hostile-input fixtures (tests/*/test_hostile_*.py): the CLI as a user runs it, a read-only file
# system, and a root that obeys file permissions. Each bounded in time: a hang fails, it never blocks.

_CLI = "import sys; from pretrain.cli import main; sys.argv[0] = 'pretrain'; main()"
_DROP = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture
def cli(capsys):
    """Run ``pretrain ARGS`` in this process through the real entry point: (exit status, stdout, stderr)."""
    import sys

    def run(*args: str) -> tuple[int, str, str]:
        from pretrain.cli import main

        old, sys.argv = sys.argv, ["pretrain", *map(str, args)]
        try:
            main()
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = old
        got = capsys.readouterr()
        return rc, got.out, got.err

    return run


@pytest.fixture
def cli_subprocess():
    """Run ``pretrain ARGS`` (or ``python -c CODE ARGS``) in a subprocess with a timeout, so a hang fails
    the test instead of blocking the suite. ``drop_dac``: bound by file permissions even as root (which
    ignores chmod): CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped by setpriv."""
    import shutil
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}

    def run(*args: str, code: str = _CLI, drop_dac: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        prefix = []
        if drop_dac and os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("root ignores file permissions and setpriv (util-linux) is missing to drop that")
            prefix = _DROP
        return subprocess.run([*prefix, sys.executable, "-c", code, *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=timeout)

    return run


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory on a read-only file system: a 1 MB tmpfs mounted read-only (needs root)."""
    import subprocess

    d = tmp_path / "readonly"
    d.mkdir()
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)], capture_output=True,
                         text=True, timeout=30)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs (needs root with CAP_SYS_ADMIN): {got.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True, timeout=30)
