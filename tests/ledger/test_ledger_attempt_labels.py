"""Attempt-level labels (schema: SQLite 4, PostgreSQL 2) on both backends, ``paxis label``'s
``tier`` / ``attempt_index`` columns, and reading labelled pairs for calibration."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.calibration.from_ledger import load_pairs
from paxis_router.cli import main
from paxis_router.errors import LedgerError
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.sqlite import MIGRATIONS, SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.testing import call_record
from paxis_router.types import CallRecord, Decision, Verdict

Ledger = SQLiteLedger | PostgresLedger
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _row(route: str, index: int, **over: object) -> CallRecord:
    fields: dict[str, object] = {
        "ts": T0 + timedelta(minutes=index),
        "tier": "local:w" if index == 0 else "frontier:f",
        "tier_index": index,
        "model": "w-model" if index == 0 else "f-model",
        "reason": "accept",
        "final": index == 0,
        "skill": "maths,units",
        "data_class": None,
        "prompt_tokens": 50,
        "completion_tokens": 10,
        "latency_s": 0.0,
        "cost_usd": Decimal("0.001") if index == 0 else Decimal("0.02"),
        "verdicts": (Verdict("arithmetic", True, 0.9, ""),),
    }
    return call_record(route, index, **{**fields, **over})


def _shadowed(route: str, *, score: float = 0.9) -> list[CallRecord]:
    return [
        _row(route, 0, verdicts=(Verdict("arithmetic", True, score, ""),)),
        _row(route, 1, decision=Decision.SHADOW, reason="shadow: sample"),
    ]


def test_attempt_labels_are_kept_apart_from_route_labels(ledger: Ledger) -> None:
    ledger.record_many(_shadowed("A"))
    ledger.label("A", correct=True, source="audit")
    ledger.label("A", correct=False, source="first", attempt_index=1)
    ledger.label("A", correct=True, score=0.5, source="second", attempt_index=1)
    assert ledger.query("SELECT route_id, correct, source FROM labels") == [("A", 1, "audit")]
    assert ledger.query(
        "SELECT route_id, attempt_index, correct, score, source FROM attempt_labels"
    ) == [("A", 1, 1, 0.5, "second")]
    with pytest.raises(LedgerError, match="attempt_index must be >= 0"):
        ledger.label("A", correct=True, attempt_index=-1)
    with pytest.raises(LedgerError, match="needs correct= or score="):
        ledger.label("A", attempt_index=1)


def test_shadow_rows_count_in_spend_never_as_routes(ledger: Ledger) -> None:
    ledger.record_many([*_shadowed("A"), *_shadowed("B")])
    built = report.build(ledger)
    assert (built.routes, built.attempts, built.escalation_rate) == (2, 4, 0)
    assert built.total_cost_usd == Decimal("0.042")


def test_pairs_read_route_and_attempt_labels_on_both_backends(ledger: Ledger) -> None:
    ledger.record_many([*_shadowed("A", score=0.4), *_shadowed("B"), *_shadowed("C")])
    ledger.record_many(
        [
            _row("D", 0, decision=Decision.ESCALATE, final=False, passed=False),
            _row("D", 1, final=True),
        ]
    )
    for route in "ABCD":
        ledger.label(route, correct=route != "A")
    ledger.label("A", correct=True, attempt_index=1)
    ledger.label("B", correct=True, attempt_index=1)  # C's shadow answer stays unlabelled
    ledger.label("D", correct=False, attempt_index=0)
    found = load_pairs(ledger, weak="w-model", strong="frontier:f")
    assert [e.id for e in found.examples] == ["A", "B"]
    assert (found.shadowed_routes, found.unlabelled_routes) == (2, 1)
    a = found.examples[0]
    assert (a.outcomes["w-model"].correct, a.outcomes["frontier:f"].correct) == (False, True)
    assert a.outcomes["frontier:f"].cost_usd == Decimal("0.02")
    assert found.verdicts[0] == (Verdict("arithmetic", True, 0.4, ""),)
    assert found.finish_reasons == {"stop": 2}
    assert found.has_text is False  # no stored text: calibrate fits a threshold
    with_escalated = load_pairs(ledger, weak="w-model", strong="f-model", include_escalated=True)
    assert [e.id for e in with_escalated.examples] == ["A", "B", "D"]
    assert load_pairs(ledger, weak="w-model", strong="f-model", team="other").examples == []
    assert len(load_pairs(ledger, weak="w-model", strong="f-model", skill="units").examples) == 2
    assert load_pairs(ledger, weak="w-model", strong="f-model", skill="unit").examples == []
    assert (
        load_pairs(ledger, weak="w-model", strong="f-model", since=T0 + timedelta(1)).examples == []
    )


def test_migration_4_adds_the_table_to_an_old_ledger(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for number, migration in enumerate(MIGRATIONS[:3]):
        conn.executescript(migration)
        conn.execute(f"PRAGMA user_version = {number + 1}")
    conn.commit()
    conn.close()
    with SQLiteLedger(path) as ledger:
        assert ledger.schema_version == len(MIGRATIONS)  # 4 and every later one
        ledger.label("X", correct=True, attempt_index=0)
        assert ledger.query("SELECT route_id FROM attempt_labels") == [("X",)]


# --- paxis label ----------------------------------------------------------------------------------


@pytest.fixture
def labelled_db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger:
        ledger.record_many([*_shadowed("A"), *_shadowed("B")])
    return path


def test_label_csv_grades_one_tier_or_one_attempt(
    tmp_path: Path, labelled_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "request_id,tier,attempt_index,correct,score\n"
        "req-A,,,true,\n"  # the route's answer
        "req-A,frontier:f,,false,\n"  # the shadow answer, by tier name
        "req-B,,1,,0.25\n"  # by attempt index
        "req-B,w-model,,yes,\n",  # by model name
        encoding="utf-8",
    )
    assert main(["label", str(labels), "--ledger", str(labelled_db)]) == 0
    assert capsys.readouterr().out == f"labelled 4 route(s) from {labels}\n"
    with SQLiteLedger(labelled_db) as ledger:
        assert ledger.query("SELECT route_id, correct FROM labels") == [("A", 1)]
        assert ledger.query(
            "SELECT route_id, attempt_index, correct, score FROM attempt_labels "
            "ORDER BY route_id, attempt_index"
        ) == [("A", 1, 0, None), ("B", 0, 1, None), ("B", 1, None, 0.25)]


def test_label_csv_lists_a_tier_the_route_never_called(
    tmp_path: Path, labelled_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("route_id,tier,correct\nA,frontier:nope,true\nB,,true\n", encoding="utf-8")
    assert main(["label", str(labels), "--ledger", str(labelled_db)]) == 1
    out = capsys.readouterr().out
    assert "labelled 1 route(s)" in out
    assert "1 id(s) match no route in the ledger: A (frontier:nope)" in out


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("route_id,tier,attempt_index,correct\nA,local:w,0,true\n", "tier or attempt_index"),
        ("route_id,attempt_index,correct\nA,first,true\n", "attempt_index must be a whole number"),
    ],
)
def test_label_csv_rejects_bad_attempt_columns(
    tmp_path: Path,
    labelled_db: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    match: str,
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(body, encoding="utf-8")
    assert main(["label", str(labels), "--ledger", str(labelled_db)]) == 2
    err = capsys.readouterr().err
    assert match in err and "line 2" in err
