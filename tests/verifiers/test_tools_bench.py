"""benchmarks/tools_bench.py on a small sample of BFCL: its JSON keys and that rates are rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "tools_bench.py"


def _bfcl() -> Path | None:
    for folder in ROOT.parents:
        candidate = folder / "shared" / "data" / "bfcl"
        if (candidate / "SOURCE.md").is_file():
            return candidate
    return None


DATA = _bfcl()
pytestmark = pytest.mark.skipif(DATA is None, reason="BFCL data (../shared/data/bfcl) not present")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_the_benchmark_reports_every_rate_on_a_sample() -> None:
    done = _run("--json", "--data", str(DATA), "--limit", "12", "--seed", "3")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["limit"] == 12
    assert set(report["questions"]) >= {"simple_python", "live_multiple", "irrelevance"}
    assert all(0 < n <= 12 for n in report["questions"].values())
    rates = [
        report["gt_accept_rate"],
        report["irrelevance_no_call_accept_rate"],
        report["corrupt_detect_rate"],
        report["corrupt_detect_rate_schema_catchable"],
        report["call_on_irrelevance_schema_only"],
    ]
    by_kind = report["corrupt_detect_rate_by_kind"]
    assert set(by_kind) == {
        "wrong_function",
        "missing_required",
        "wrong_type",
        "invented_argument",
        "malformed_json",
        "enum_violation",
        "call_on_irrelevance",
        "wrong_value",
    }
    rates += [kind["rate"] for kind in by_kind.values() if kind["n"]]
    assert all(0.0 <= rate <= 1.0 for rate in rates)
    assert report["gt_total"] == sum(c["n"] for c in report["gt_by_category"].values())
    assert report["gt_accept_rate"] >= 0.9
    assert by_kind["malformed_json"]["rate"] == 1.0
    assert (
        by_kind["wrong_value"]["rate"] == 0.0
    )  # no schema catches a wrong value of the right type


def test_the_corruptions_are_seeded() -> None:
    first = json.loads(_run("--json", "--data", str(DATA), "--limit", "5", "--seed", "7").stdout)
    again = json.loads(_run("--json", "--data", str(DATA), "--limit", "5", "--seed", "7").stdout)
    assert first["corrupt_detect_rate_by_kind"] == again["corrupt_detect_rate_by_kind"]


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    done = _run("--json", "--data", str(tmp_path))
    assert done.returncode == 2
    assert f"no BFCL data at {tmp_path}" in done.stderr
