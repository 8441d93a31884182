"""Readers open ledgers read-only: nothing created, migrated or written; anything that is not a
paxis ledger of this schema is refused, named, and left as it was. SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paxis_router.errors import LedgerError
from paxis_router.ledger import open_ledger
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.testing import call_record

Ledger = SQLiteLedger | PostgresLedger
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_a_read_only_ledger_reads_and_never_writes(ledger: Ledger) -> None:
    ledger.record_many([call_record("A", ts=T0)])
    location = ledger.path if isinstance(ledger, SQLiteLedger) else ledger.url
    reader = open_ledger(location, read_only=True)
    try:
        assert [r.route_id for r in reader.rows()] == ["A"]
        assert report.build(reader).attempts == 1
        for attempt in (
            reader.check,
            lambda: reader.record(call_record("B", ts=T0)),
            lambda: reader.label("A", correct=True),
        ):
            with pytest.raises(LedgerError, match="is open read-only; nothing can be recorded"):
                attempt()
    finally:
        reader.close()


def test_postgres_read_only_refuses_a_database_without_a_ledger(postgres_url: str) -> None:
    import psycopg

    with pytest.raises(LedgerError, match=r"holds no paxis ledger \(no paxis_schema table\)"):
        PostgresLedger(postgres_url, read_only=True)
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert found.fetchone() == (0,)  # nothing was created


def test_sqlite_read_only_refuses_what_is_not_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=r"no ledger at .*missing\.db"):
        SQLiteLedger(tmp_path / "missing.db", read_only=True)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LedgerError, match=r"junk\.db is not a paxis ledger"):
        SQLiteLedger(junk, read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_opening_read_write_refuses_an_unrelated_sqlite_db(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=r"crm\.db is not a paxis ledger.*refusing to add tables"):
        SQLiteLedger(path)
    assert path.read_bytes() == before


def test_read_only_names_an_older_schema_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for number, migration in enumerate(MIGRATIONS[:-1]):
            conn.executescript(migration)
            conn.execute(f"PRAGMA user_version = {number + 1}")
    conn.close()
    with pytest.raises(
        LedgerError,
        match=rf"schema version {SCHEMA_VERSION - 1}, older than this paxis_router reads "
        rf"\({SCHEMA_VERSION}\); open it once read-write to migrate it",
    ):
        SQLiteLedger(path, read_only=True)
    SQLiteLedger(path).close()  # read-write migrates it
    with SQLiteLedger(path, read_only=True) as reader:
        assert reader.schema_version == SCHEMA_VERSION
