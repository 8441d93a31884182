"""benchmarks/tools_bench.py on a small sample of BFCL: its JSON keys and that rates are rates."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
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
    done = _run(
        "--json", "--data", str(DATA), "--limit", "12", "--seed", "3", "--overhead-repeat", "1"
    )
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

    # the orchestrator on the multi-turn tasks (the first 12 of multi_turn_base)
    assert (report["multi_turn_tasks"], report["multi_turn_category"]) == (12, "multi_turn_base")
    assert report["multi_turn_state_match"] == report["multi_turn_bfcl_check"] == 1.0
    assert report["multi_turn_misses"] == []
    assert report["multi_turn_tool_calls"] > report["multi_turn_tasks"]
    assert report["multi_turn_tool_calls_rejected"] == 0
    # two steps a turn with calls (the calls, then the answer): every turn is there
    assert report["multi_turn_turns"] < report["multi_turn_steps"] <= 2 * report["multi_turn_turns"]


def test_the_escalation_demo_compares_the_three_ladders_on_a_sample() -> None:
    done = _run(
        "--json", "--data", str(DATA), "--limit", "12", "--seed", "3", "--metric", "escalation_demo"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    success = report["escalation_task_success"]
    assert set(success) == {"worker_only", "frontier_only", "routed"}
    assert success["frontier_only"] == {"state_match": 1.0, "bfcl_check": 1.0}
    assert success["worker_only"]["bfcl_check"] < success["routed"]["bfcl_check"]
    assert all(0.0 <= rate <= 1.0 for ladder in success.values() for rate in ladder.values())
    assert report["escalation_calls_corrupted"] > 0
    assert 0 < report["escalation_steps_escalated"] < report["escalation_steps"]
    assert 0.0 < report["escalation_share_of_steps"] < report["escalation_share_of_call_steps"]
    by_kind = report["escalation_by_kind"]
    assert set(by_kind) == {
        "wrong_function",
        "missing_required",
        "wrong_type",
        "invented_argument",
        "malformed_json",
        "enum_violation",
        "wrong_value",
    }
    assert sum(kind["n"] for kind in by_kind.values()) == report["escalation_calls_corrupted"]
    for kind in ("wrong_type", "missing_required", "invented_argument", "malformed_json"):
        assert by_kind[kind]["step_escalated"] == by_kind[kind]["n"]  # a schema always sees it
    wrong_value = by_kind["wrong_value"]
    assert wrong_value["invisible_to_a_schema"] == wrong_value["n"]
    assert wrong_value["step_escalated"] == wrong_value["escalated_by_another"]
    cost = {name: Decimal(usd) for name, usd in report["escalation_cost_usd"].items()}
    assert cost["worker_only"] < cost["routed"] < cost["frontier_only"]
    assert 0 < report["escalation_cost_ratio_routed_vs_frontier"] < 1


def test_every_multi_turn_task_ends_in_the_ground_truths_state_but_one_explained() -> None:
    done = _run("--json", "--data", str(DATA), "--metric", "multi_turn_state_match")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["multi_turn_tasks"] == 200
    assert report["multi_turn_state_match"] == 0.995
    # the one miss: the ground truth closes ticket 'ticket_001' while BFCL's schema (and the
    # method's annotation) types ticket_id as an integer; the tool-call check refuses the call
    (miss,) = report["multi_turn_misses"]
    assert miss["id"] == "multi_turn_base_173"
    assert "argument 'ticket_id': expected integer, got string \"ticket_001\"" in miss["why"]


def test_the_agent_step_overhead_is_measured_against_litellms_mock() -> None:
    done = _run(
        *("--json", "--data", str(DATA), "--limit", "3", "--overhead-repeat", "1"),
        *("--metric", "agent_step_overhead"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["agent_step_tasks"] == 3
    for ladder in ("bare", "default_policy"):
        figures = report[f"agent_step_us_{ladder}"]
        assert 0 < figures["min"] <= figures["median"]
        assert report[f"agent_step_ratio_{ladder}"] > 0
    assert report["agent_step_litellm_mock_us"] > 0


def test_the_corruptions_are_seeded() -> None:
    args = ("--json", "--data", str(DATA), "--limit", "5", "--seed", "7")
    metrics = ("--metric", "corrupt_detect_rate", "--metric", "escalation_demo")
    first = json.loads(_run(*args, *metrics).stdout)
    again = json.loads(_run(*args, *metrics).stdout)
    assert first["corrupt_detect_rate_by_kind"] == again["corrupt_detect_rate_by_kind"]
    assert first["escalation_by_kind"] == again["escalation_by_kind"]
    assert first["escalation_task_success"] == again["escalation_task_success"]


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    done = _run("--json", "--data", str(tmp_path))
    assert done.returncode == 2
    assert f"no BFCL data at {tmp_path}" in done.stderr
