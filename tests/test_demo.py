"""``paxis demo`` and ``paxis route`` in-process: ledger rows, printed figures, exit codes."""

from __future__ import annotations

import csv
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.types import CallRecord, Decision, utc_now

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "routellm"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
LIMIT = 40


def _labels() -> dict[str, dict[str, bool]]:
    """The dataset's correctness labels of the first LIMIT uncontaminated rows, read directly."""
    dropped = {
        str(json.loads(line)["eval_idx"])
        for line in (DATA / "contaminated_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    }
    with (DATA / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(str(i), r) for i, r in enumerate(csv.DictReader(handle)) if str(i) not in dropped]
    return {
        "local:mixtral-8x7b": {i: r[WEAK] == "True" for i, r in rows[:LIMIT]},
        "frontier:gpt-4-1106-preview": {i: r[STRONG] == "True" for i, r in rows[:LIMIT]},
    }


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["demo", "--limit", str(LIMIT), "--json", *argv]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_demo_figures_match_the_ledger_and_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_path = tmp_path / "demo.db"
    summary = _run_json(capsys, "--ledger", str(ledger_path))
    with SQLiteLedger(ledger_path) as ledger:
        rows = ledger.rows()
    finals = [r for r in rows if r.final]
    labels = _labels()
    assert summary["n"] == LIMIT == len(finals)
    assert summary["dropped_contaminated"] == 12
    assert summary["ledger"] == str(ledger_path.resolve())
    assert {r.team for r in rows} == {"demo"}
    assert {r.tier for r in rows} <= set(labels)
    assert all(r.tier == "local:mixtral-8x7b" for r in rows if r.attempt_index == 0)

    # Accuracy of the tier that answered, from the ledger's final rows and the dataset labels.
    answered = {r.request_id.removeprefix("gsm8k-"): r.tier for r in finals}
    assert set(answered) == set(labels["local:mixtral-8x7b"])
    accuracy = summary["accuracy"]
    assert isinstance(accuracy, dict)
    weak = labels["local:mixtral-8x7b"]
    strong = labels["frontier:gpt-4-1106-preview"]
    assert accuracy["worker_only"] == round(sum(weak.values()) / LIMIT, 4)
    assert accuracy["frontier_only"] == round(sum(strong.values()) / LIMIT, 4)
    escalated = {r.route_id for r in rows if r.attempt_index > 0}
    assert summary["escalation_rate"] == round(len(escalated) / LIMIT, 4)
    assert 0 < len(escalated) < LIMIT
    routed_right = sum(labels[tier][qid] for qid, tier in answered.items())
    assert accuracy["routed"] == round(routed_right / LIMIT, 4)

    spend = Decimal(str(summary["spend_usd"]))
    ledger_spend = sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))
    assert abs(spend - ledger_spend) < Decimal("1e-8")
    frontier_only = Decimal(str(summary["frontier_only_usd"]))
    assert Decimal(str(summary["savings_usd"])) == frontier_only - spend
    assert summary["savings_ratio"] == round(float(frontier_only / spend), 2)
    assert summary["token_counter"] == "tiktoken:cl100k_base"


def test_demo_text_output_and_default_ledger_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert f"ledger: {tmp_path / 'paxis-demo.db'}" in out
    assert "questions routed: 5 (12 contaminated prompts dropped)" in out
    for label in ("worker only (local:mixtral-8x7b)", "frontier only (frontier:gpt-4", "routed"):
        assert label in out
    assert "escalation rate:" in out
    assert "savings vs frontier-only: $" in out
    with SQLiteLedger(tmp_path / "paxis-demo.db") as ledger:
        finals = [r.request_id for r in ledger.rows() if r.final]
    assert sorted(finals) == ["gsm8k-3", "gsm8k-4", "gsm8k-5", "gsm8k-6", "gsm8k-7"]


def test_demo_replaces_its_own_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_path = tmp_path / "demo.db"
    _run_json(capsys, "--ledger", str(ledger_path))
    with SQLiteLedger(ledger_path) as ledger:
        first = ledger.count()
    _run_json(capsys, "--ledger", str(ledger_path))
    with SQLiteLedger(ledger_path) as ledger:
        assert ledger.count() == first


def test_demo_refuses_a_file_that_is_not_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my precious notes", encoding="utf-8")
    assert main(["demo", "--limit", "2", "--ledger", str(path)]) == 2
    assert "is not a paxis ledger" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "my precious notes"


def test_demo_refuses_another_sqlite_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    assert main(["demo", "--limit", "2", "--ledger", str(path)]) == 2
    assert "no attempts table" in capsys.readouterr().err


def test_demo_refuses_a_production_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "prod.db"
    with SQLiteLedger(path) as ledger:
        ledger.record(
            CallRecord(
                route_id="r",
                request_id="q",
                attempt_index=0,
                ts=utc_now(),
                tier="local:prod",
                tier_index=0,
                model="m",
                decision=Decision.ACCEPT,
                reason="",
                final=True,
            )
        )
    assert main(["demo", "--limit", "2", "--ledger", str(path)]) == 2
    assert "tiers the demo does not use (['local:prod'])" in capsys.readouterr().err
    with SQLiteLedger(path) as ledger:
        assert ledger.count() == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers: [", "not valid YAML"),
        ("tiers: [{kind: litellm, model: gpt-4o, colour: red}]", "tiers[0].colour: unknown key"),
        ("tiers: [{kind: litellm, model: gpt-4o}]", "at least two `kind: replay` tiers"),
    ],
)
def test_demo_bad_policy_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(text, encoding="utf-8")
    ledger = tmp_path / "x.db"
    assert main(["demo", "--policy", str(policy), "--ledger", str(ledger), "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("paxis demo: error: ")
    assert message in err
    assert str(policy) in err


def test_demo_limit_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--limit", "0"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err


# --- paxis route ------------------------------------------------------------------------------


def _route_policy(tmp_path: Path, frontier_answer: str) -> Path:
    path = tmp_path / "route.yaml"
    path.write_text(
        f"""
tiers:
  - {{kind: litellm, model: gpt-4o-mini, name: "local:cheap",
     completion_kwargs: {{mock_response: "I think 41"}}}}
  - {{kind: litellm, model: gpt-4o, completion_kwargs: {{mock_response: "{frontier_answer}"}}}}
verifiers: [{{kind: regex, must_match: "^\\\\d+$"}}]
policy: {{escalate_when: verdict_failed, stop_when: tiers_exhausted, on_exhausted: return_best}}
ledger: {{path: "{tmp_path / "route.db"}"}}
""",
        encoding="utf-8",
    )
    return path


def test_route_prints_the_answer_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "42")
    assert main(["route", "--policy", str(policy), "--team", "claims", "--json", "6*7?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["content"], result["tier"], result["accepted"]) == (
        "42",
        "frontier:gpt-4o",
        True,
    )
    assert [a["tier"] for a in result["attempts"]] == ["local:cheap", "frontier:gpt-4o"]
    with SQLiteLedger(tmp_path / "route.db") as ledger:
        rows = ledger.rows()
    assert [(r.tier, r.team) for r in rows] == [
        ("local:cheap", "claims"),
        ("frontier:gpt-4o", "claims"),
    ]
    assert Decimal(result["cost_usd"]) == sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))


def test_route_text_output_and_exit_1_when_not_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "forty-two")
    assert main(["route", "--policy", str(policy), "6*7?"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("forty-two\n")
    assert "NOT accepted (best answer) from frontier:gpt-4o after 2 attempt(s)" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\npolicy: {stop_when: maybe}",
            "unknown predicate",
        ),
        ("verifiers: []", "tiers: Field required"),
    ],
)
def test_route_bad_policy_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(text, encoding="utf-8")
    assert main(["route", "--policy", str(policy), "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"paxis route: error: {policy}: ")
    assert message in err
