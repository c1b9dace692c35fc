"""Run-directory fixtures for the report tests, written by report_fakerun (tests/helpers/)."""

from pathlib import Path

import pytest
from report_fakerun import write_run


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    """A complete run directory (every artifact the report knows), shared read-only across tests."""
    return write_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="session")
def full_report(full_run: Path) -> Path:
    """index.html of the complete run, built once (plots cost a few seconds of CPU)."""
    from pretrain.report import build_report

    return build_report(full_run)
