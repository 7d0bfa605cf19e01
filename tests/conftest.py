"""Suite-wide rules: under CI=true a skipped real-service test is a failure, not a pass."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

_REAL_SERVICE_DIRS = ("integration", "e2e", "fuzz")
_TESTS = Path(__file__).resolve().parent


def _needs_real_services(item: pytest.Item) -> bool:
    try:
        rel = Path(str(item.path)).resolve().relative_to(_TESTS)
    except ValueError:
        return False
    return rel.parts[0] in _REAL_SERVICE_DIRS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() == "true" and _needs_real_services(item):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a real-service test must run, but it was skipped: {reason}"
