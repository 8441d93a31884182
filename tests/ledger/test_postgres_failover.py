"""The PostgreSQL ledger outlives its server: a restart (as in a failover) and an outage, on a
real server of the test's own that the test stops and starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from paxis_router.errors import LedgerError
from paxis_router.ledger.buffer import BufferConfig
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.testing import call_record

if TYPE_CHECKING:
    from tests.ledger.conftest import PostgresServer

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def routes(ledger: PostgresLedger) -> list[str]:
    return [r.route_id for r in ledger.rows()]


def test_records_land_after_the_server_restarts(own_postgres: PostgresServer) -> None:
    ledger = PostgresLedger(own_postgres.new_database(), connect_timeout_s=2)
    try:
        ledger.record(call_record("before", ts=T0))
        ledger.flush()
        own_postgres.restart()  # every open session is cut
        for n in range(3):
            ledger.record(call_record(f"after-{n}", ts=T0 + timedelta(seconds=n)))
        ledger.flush()  # the pool hands out a checked (new) connection
        ledger.check()
        assert routes(ledger) == ["before", "after-0", "after-1", "after-2"]
        ledger.record_many([call_record("batch", ts=T0)])
        ledger.label("batch", correct=True)
        assert ledger.count() == 5
    finally:
        ledger.close()


def test_check_refuses_while_the_server_is_down_and_nothing_recorded_is_lost(
    own_postgres: PostgresServer,
) -> None:
    url = own_postgres.new_database()
    ledger = PostgresLedger(url, connect_timeout_s=1, buffer=BufferConfig(retry_max_s=0.2))
    try:
        ledger.record(call_record("up", ts=T0))
        ledger.flush()
        ledger.check()
        own_postgres.stop()
        ledger.record(call_record("during", ts=T0))  # a route that already paid: queued
        with pytest.raises(LedgerError, match=r"1 attempt\(s\) not written after 3 s"):
            ledger.flush(timeout_s=3)
        with pytest.raises(LedgerError, match=r"cannot record right now.*1 attempt"):
            ledger.check()  # the router refuses paid calls now
        own_postgres.start()
        ledger.flush()  # retried until the server answers again
        ledger.check()
        assert routes(ledger) == ["up", "during"]
    finally:
        ledger.close()
    with PostgresLedger(url, read_only=True) as reader:
        assert [r.route_id for r in reader.rows()] == ["up", "during"]
