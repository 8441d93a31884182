"""Fixtures of the sandbox tests: a working bubblewrap, or a skip (a failure under
``PAXIS_REQUIRE_BWRAP=1`` or ``CI``, where a missing or broken bwrap must not pass unnoticed)."""

from __future__ import annotations

import os

import pytest

from paxis_router.governance.sandbox import Sandbox

# Read at import: the suite's autouse fixture strips PAXIS_* from each test's environment.
REQUIRE_BWRAP = os.environ.get("PAXIS_REQUIRE_BWRAP") == "1" or bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def bwrap() -> None:
    """Skip the test when bubblewrap cannot run here; fail it when it is required."""
    box = Sandbox()
    if box.available():
        return
    message = f"no working bubblewrap here ({box.unavailable_reason}): apt-get install bubblewrap"
    if REQUIRE_BWRAP:
        pytest.fail(f"PAXIS_REQUIRE_BWRAP=1: {message}")
    pytest.skip(message)
