from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router import CallRecord, Decision, LedgerError, SQLiteLedger, Verdict
from paxis_router.ledger.base import ticks_to_usd, usd_to_ticks
from paxis_router.ledger.sqlite import SCHEMA_VERSION

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def record(route: str = "r1", index: int = 0, **overrides: object) -> CallRecord:
    values: dict[str, object] = {
        "route_id": route,
        "request_id": f"req-{route}",
        "attempt_index": index,
        "ts": T0,
        "tier": "local:w",
        "tier_index": 0,
        "model": "qwen",
        "decision": Decision.ACCEPT,
        "reason": "accept: 1 verifier(s) passed",
        "final": True,
        "team": "claims",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "latency_s": 0.25,
        "cost_usd": Decimal("0.0000123"),
        "counterfactual_usd": Decimal("0.00025"),
        "verdicts": (Verdict("arithmetic", True, 1.0, "2 of 2 right"),),
        "passed": True,
    }
    values.update(overrides)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field_exact(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    original = record(cost_usd=Decimal("0.0000000001"), counterfactual_usd=None)
    ledger.record(original)
    (back,) = ledger.rows()
    assert back.id is not None
    assert back == original  # id is excluded from equality
    assert back.cost_usd == Decimal("1E-10")
    assert back.counterfactual_usd is None


def test_money_ticks_are_exact_and_none_stays_unknown() -> None:
    assert usd_to_ticks(Decimal("0.0003075")) == 3_075_000
    assert ticks_to_usd(3_075_000) == Decimal("0.0003075")
    assert usd_to_ticks(None) is None
    assert ticks_to_usd(None) is None
    assert usd_to_ticks(Decimal(0)) == 0


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    assert ledger.schema_version == SCHEMA_VERSION
    assert ledger.query("PRAGMA journal_mode") == [("wal",)]


def test_reopening_keeps_rows_and_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with SQLiteLedger(path) as ledger:
        ledger.record(record())
    with SQLiteLedger(path) as again:
        assert again.count() == 1
        assert again.schema_version == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(LedgerError, match="newer than this paxis_router understands"):
        SQLiteLedger(path)


def test_unwritable_path_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match=r"cannot open ledger .*not-a-dir/l\.db"):
        SQLiteLedger(blocker / "l.db")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match=r"junk\.db"):
        SQLiteLedger(path)


def test_failed_write_raises_and_keeps_earlier_rows(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record(record())
    ledger.record(record())  # same route and attempt index: refused by the writer
    ledger.record(record(route="r3"))
    with pytest.raises(LedgerError, match=r"refused 1 attempt.*UNIQUE constraint failed"):
        ledger.flush()
    ledger.flush()  # reported once
    with pytest.raises(LedgerError, match="naive"):  # a row that cannot be stored: at once
        ledger.record(record(route="r2", ts=datetime(2026, 1, 1)))
    assert [r.route_id for r in ledger.rows()] == ["r1", "r3"]


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    with pytest.raises(LedgerError):
        ledger.record_many([record("a"), record("b"), record("a")])
    assert ledger.count() == 0
    ledger.record_many([record("a"), record("b")])
    assert ledger.count() == 2


def test_rows_filter_by_time_window_and_route(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    for day in range(3):
        ledger.record(record(route=f"r{day}", ts=T0 + timedelta(days=day)))
    window = ledger.rows(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2))
    assert [r.route_id for r in window] == ["r1"]
    assert [r.route_id for r in ledger.rows(route_id="r2")] == ["r2"]


def test_labels_replace_earlier_labels(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.label("r1", correct=False, source="qa")
    ledger.label("r1", correct=True, score=0.9, source="qa-2")
    assert ledger.query("SELECT route_id, correct, score, source FROM labels") == [
        ("r1", 1, 0.9, "qa-2")
    ]
    with pytest.raises(LedgerError, match="needs correct= or score="):
        ledger.label("r1")


def test_two_processes_write_to_one_ledger(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SQLiteLedger(path).close()
    script = (
        "import sys\n"
        "from tests.ledger.test_sqlite_ledger import record\n"
        "from paxis_router import SQLiteLedger\n"
        "ledger = SQLiteLedger(sys.argv[1])\n"
        "for i in range(200):\n"
        "    ledger.record(record(route=f'{sys.argv[2]}-{i}'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), name], cwd=root)
        for name in ("p1", "p2")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ledger = SQLiteLedger(path)
    assert ledger.count() == 400
    assert ledger.query("PRAGMA integrity_check") == [("ok",)]
