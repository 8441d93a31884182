"""``record`` never blocks a route: it queues, a writer thread group-commits; ``check``, ``flush``,
``close`` and reads surface what happened. On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paxis_router.errors import LedgerError
from paxis_router.ledger import open_ledger
from paxis_router.ledger.base import check_sinks, drain_sinks, flush_sinks
from paxis_router.ledger.buffer import BufferConfig
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.testing import call_record
from paxis_router.types import CallRecord

Ledger = SQLiteLedger | PostgresLedger
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
SLOW = BufferConfig(max_delay_s=600)  # the writer waits for company: only flush() commits


def rec(route: str, index: int = 0) -> CallRecord:
    return call_record(route, index, ts=T0 + timedelta(seconds=index))


def reopen(ledger: Ledger, **options: object) -> Ledger:
    location = ledger.path if isinstance(ledger, SQLiteLedger) else ledger.url
    return open_ledger(location, **options)  # type: ignore[arg-type]  # read_only or buffer


def committed(ledger: Ledger) -> int:
    """Rows another connection sees: what is committed, not what is queued."""
    if isinstance(ledger, SQLiteLedger):
        with sqlite3.connect(ledger.path) as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()
        conn.close()
        return int(n)
    import psycopg

    with psycopg.connect(ledger.url) as pg:
        row = pg.execute("SELECT COUNT(*) FROM attempts").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def slow(ledger: Ledger) -> Ledger:
    """The contract's ledger, reopened with a writer that commits on flush only."""
    ledger.close()
    location = ledger.path if isinstance(ledger, SQLiteLedger) else ledger.url
    if isinstance(ledger, SQLiteLedger):
        return SQLiteLedger(location, buffer=SLOW)
    return PostgresLedger(str(location), buffer=SLOW)


def test_record_queues_and_flush_commits(slow: Ledger) -> None:
    try:
        slow.record(rec("A"))
        slow.record(rec("B"))
        assert committed(slow) == 0  # record() returned without touching the database
        slow.flush()
        assert committed(slow) == 2
        assert [r.route_id for r in slow.rows()] == ["A", "B"]
    finally:
        slow.close()


def test_reads_see_what_was_recorded_before_them(slow: Ledger) -> None:
    try:
        slow.record(rec("A"))
        assert slow.count() == 1  # rows(), count() and query() write what is queued first
        slow.record(rec("B"))
        assert [r.route_id for r in slow.rows()] == ["A", "B"]
    finally:
        slow.close()


def test_record_many_commits_after_what_was_recorded_before(slow: Ledger) -> None:
    try:
        slow.record(rec("A"))
        slow.record_many([rec("B"), rec("C")])  # returns once committed, in order
        assert committed(slow) == 3
        ids = [(r.route_id, r.id) for r in slow.rows()]
        assert [route for route, _ in ids] == ["A", "B", "C"]
    finally:
        slow.close()


def test_close_writes_what_is_queued(slow: Ledger) -> None:
    slow.record(rec("A"))
    slow.record(rec("B"))
    slow.close()
    slow.close()  # twice: nothing more
    again = reopen(slow)
    try:
        assert [r.route_id for r in again.rows()] == ["A", "B"]
    finally:
        again.close()


def test_a_closed_ledger_refuses_at_once(slow: Ledger) -> None:
    slow.close()
    with pytest.raises(LedgerError, match="is closed"):
        slow.check()
    with pytest.raises(LedgerError, match="is closed"):
        slow.record(rec("A"))


def test_a_refused_row_is_isolated_and_reported_once(ledger: Ledger) -> None:
    ledger.record(rec("A"))
    ledger.record(rec("A"))  # the same attempt twice: the database refuses the second
    ledger.record(rec("B"))
    with pytest.raises(LedgerError, match=r"refused 1 attempt\(s\).*(UNIQUE|duplicate key)"):
        ledger.flush()
    ledger.flush()  # reported once
    ledger.check()  # a refused row says nothing about the next one
    assert [r.route_id for r in ledger.rows()] == ["A", "B"]


def test_check_refuses_when_too_much_is_queued(ledger: Ledger) -> None:
    ledger.close()
    small = reopen(ledger, buffer=BufferConfig(max_delay_s=600, max_pending=3))
    try:
        for route in ("A", "B"):
            small.record(rec(route))
        small.check()
        small.record(rec("C"))  # record() still accepts: a paid call is never left unrecorded
        with pytest.raises(LedgerError, match=r"3 attempt\(s\) waiting to be written \(limit 3\)"):
            small.check()
        small.flush()
        small.check()
        assert small.count() == 3
    finally:
        small.close()


async def test_async_owners_drain_and_aclose(slow: Ledger) -> None:
    slow.record(rec("A"))
    await slow.drain()
    assert committed(slow) == 1
    slow.record(rec("B"))
    await slow.aclose()
    assert committed(slow) == 2


def test_sink_helpers_call_what_each_sink_has(slow: Ledger) -> None:
    class ListSink:  # a user's sink with record() only
        def __init__(self) -> None:
            self.seen: list[CallRecord] = []

        def record(self, entry: CallRecord) -> None:
            self.seen.append(entry)

    plain = ListSink()
    sinks = (slow, plain)
    check_sinks(sinks)
    slow.record(rec("A"))
    plain.record(rec("A"))
    flush_sinks(sinks)
    assert committed(slow) == 1
    slow.record(rec("B"))
    asyncio.run(drain_sinks(sinks))
    assert committed(slow) == 2
    slow.close()
    with pytest.raises(LedgerError, match="is closed"):
        check_sinks(sinks)
    assert len(plain.seen) == 1


# --- SQLite: a locked database, a clean exit, a crash ------------------------------------------


def test_record_does_not_wait_for_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(path, busy_timeout_s=0.2, buffer=BufferConfig(retry_max_s=0.1))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        ledger.record(rec("A"))  # returns at once; the writer waits for the lock
        with pytest.raises(LedgerError, match=r"not written after 2 s \(database is locked\)"):
            ledger.flush(timeout_s=2)
        with pytest.raises(LedgerError, match="cannot record right now: database is locked"):
            ledger.check()
        other.execute("ROLLBACK")
        ledger.flush()  # retried: written
        ledger.check()
        assert [r.route_id for r in ledger.rows()] == ["A"]
    finally:
        other.close()
        ledger.close()


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime
    from paxis_router.ledger.buffer import BufferConfig
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.testing import call_record

    ledger = SQLiteLedger(sys.argv[1], buffer=BufferConfig(max_delay_s=600))
    for n in range(10):
        ledger.record(call_record(f"flushed-{n}", ts=datetime.now(UTC)))
    ledger.flush()
    for n in range(5):
        ledger.record(call_record(f"queued-{n}", ts=datetime.now(UTC)))
    if sys.argv[2] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    # "exit": the interpreter ends normally without close()
    """
)


@pytest.mark.parametrize(("how", "kept"), [("exit", 15), ("crash", 10)])
def test_what_an_exit_and_a_crash_keep(tmp_path: Path, how: str, kept: int) -> None:
    path = tmp_path / "l.db"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), how], cwd=ROOT, capture_output=True, timeout=120
    )
    assert child.returncode == (0 if how == "exit" else -9), child.stderr
    with SQLiteLedger(path, read_only=True) as ledger:
        routes = [r.route_id for r in ledger.rows()]
    # A clean exit writes everything queued; a crash loses only what was recorded after the
    # last flush (and not yet committed by the writer), never a flushed row, never half a batch.
    assert routes[:10] == [f"flushed-{n}" for n in range(10)]
    assert len(routes) == kept
