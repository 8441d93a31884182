"""PAXIS_REQUIRE_BWRAP=1 (and CI) turn a missing bubblewrap from a skip into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_SANDBOX_TEST = "tests/governance/test_sandbox.py::test_a_normal_run_reads_stdin_and_exits_zero"


@pytest.mark.parametrize(
    ("extra", "outcome"),
    [({}, "1 skipped"), ({"PAXIS_REQUIRE_BWRAP": "1"}, "1 error")],
)
def test_a_missing_bwrap_skips_unless_it_is_required(
    tmp_path: Path, extra: dict[str, str], outcome: str
) -> None:
    no_tools = tmp_path / "bin"  # a PATH without bwrap
    no_tools.mkdir()
    env = {
        "PATH": str(no_tools),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_SANDBOX_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert outcome in done.stdout, done.stdout[-2000:]
    assert "bwrap not found on PATH" in done.stdout
    assert done.returncode == (0 if outcome.endswith("skipped") else 1)
