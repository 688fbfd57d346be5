"""pytest plugin for CI: a skip because something CI installs is missing is a failure.

Why: ``pytest.importorskip`` and "not installed" skips keep the suite green on a
laptop without the extras, but in CI (``.ci/run`` installs every extra and Debian
package the tests use) such a skip means the install is broken or incomplete,
and the tests it hides silently stop running (the NOIZEUS test was skipped in
every CI run because ``openpyxl`` was missing from ``[train]``). Skips for data
that CI does not have (the shared weights, a GPU) stay skips.

Use: ``PYTHONPATH=.ci python -m pytest -p strict_skips``; ``LIVESQA_ALLOWED_SKIPS``
holds extra regular expressions (``|``-separated) of skip reasons to allow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

#: Skip reasons that mean "something .ci/run installs is missing".
INSTALLED_BY_CI = (
    r"could not import",  # pytest.importorskip: every Python package the tests use is installed
    r"\bnot installed\b",  # e.g. "Debian chromium not installed"
    r"\bwithout ffmpeg\b",
)


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    allowed = os.environ.get("LIVESQA_ALLOWED_SKIPS", "")
    if allowed and re.search(allowed, reason):
        return
    if any(re.search(p, reason, re.IGNORECASE) for p in INSTALLED_BY_CI):
        report.outcome = "failed"
        report.longrepr = (f"unexpected skip in CI: {reason}\n.ci/run installs what this test "
                           "needs, so the install is broken; fix it (or allow the reason in "
                           "LIVESQA_ALLOWED_SKIPS)")
