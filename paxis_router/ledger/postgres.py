"""The same ledger in PostgreSQL, by URL, so a fleet of routers shares one ledger (psycopg 3).

The schema mirrors :mod:`paxis_router.ledger.sqlite` column for column: money as BIGINT ticks of
1e-10 USD, timestamps as the same sortable UTC text, flags as SMALLINT 0/1. Only ``verdicts`` is
``jsonb`` here. Keeping the types alike lets :mod:`paxis_router.reports.cost_report` run one SQL
text on both
backends (``?`` placeholders are translated to psycopg's ``%s`` by :meth:`PostgresLedger.query`).
Needs the ``[postgres]`` extra.

Example:
    >>> ledger = PostgresLedger("postgresql://paxis@127.0.0.1:5432/paxis")  # doctest: +SKIP
    >>> ledger.count()  # doctest: +SKIP
    0
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from paxis_router.errors import LedgerError
from paxis_router.ledger import rollup
from paxis_router.ledger.sqlite import (
    ATTEMPT_LABELS_TABLE,
    COLUMNS,
    attempts_filter,
    label_statement,
    record_to_row,
    row_to_record,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from paxis_router.types import CallRecord

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE attempts (
        id BIGSERIAL PRIMARY KEY,
        route_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        attempt_index INTEGER NOT NULL,
        ts TEXT NOT NULL,
        team TEXT,
        skill TEXT,
        data_class TEXT,
        tier TEXT NOT NULL,
        tier_index INTEGER NOT NULL,
        model TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        final SMALLINT NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s DOUBLE PRECISION NOT NULL,
        cost_ticks BIGINT,
        counterfactual_ticks BIGINT,
        verdicts JSONB NOT NULL,
        passed SMALLINT NOT NULL,
        error TEXT,
        error_type TEXT,
        finish_reason TEXT,
        degraded SMALLINT NOT NULL,
        budget_capped SMALLINT NOT NULL,
        UNIQUE (route_id, attempt_index)
    );
    CREATE INDEX attempts_ts ON attempts (ts);
    CREATE INDEX attempts_team_ts ON attempts (team, ts);
    CREATE TABLE labels (
        route_id TEXT PRIMARY KEY,
        correct SMALLINT,
        score DOUBLE PRECISION,
        source TEXT,
        labelled_at TEXT NOT NULL
    );
    """
    # the daily rollups that record_many keeps up to date (see rollup.py)
    + ";\n".join(rollup.schema("BIGINT", "DOUBLE PRECISION")),
    # 2: labels of one attempt's answer (as SQLite's migration 4)
    ATTEMPT_LABELS_TABLE.format(flag="SMALLINT", real="DOUBLE PRECISION"),
    # 3: shadow calls counted apart in rollup_daily (as SQLite's migration 5), backfilled.
    rollup.shadow_migration("postgresql", "BIGINT"),
)

SCHEMA_VERSION = len(MIGRATIONS)
_INSERT = f"INSERT INTO attempts ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
_UPSERTS = {name: sql.replace("?", "%s") for name, sql in rollup.UPSERTS.items()}
_SELECT = ", ".join("verdicts::text" if c == "verdicts" else c for c in COLUMNS)
# A lock number of our own, so concurrent first opens migrate one at a time.
_MIGRATION_LOCK = 7_274_911


class PostgresLedger:
    """A ledger in PostgreSQL with the same methods as ``SQLiteLedger``.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/dbname``. Keep passwords out of
            config files: libpq also reads ``PGPASSWORD`` and ``~/.pgpass``.
        connect_timeout_s: how long to wait for the server.

    One connection per ledger object, guarded by a lock (safe across threads); each
    ``record`` / ``record_many`` is its own committed transaction, rows and daily rollups
    together. Writers on many machines share the rollup rows of a day: the upserts take their
    row locks in one sorted order, so concurrent batches wait for each other but never deadlock.
    """

    dialect = "postgresql"

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0):
        import psycopg

        self.url = url
        self._display = _redact(url)
        self._lock = threading.Lock()
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout_s))
            )
            self._migrate()
        except psycopg.Error as exc:
            raise LedgerError(
                f"cannot open ledger {self._display}: {exc}; check the URL, that the server is "
                "running and that the user may create tables"
            ) from exc

    def _migrate(self) -> None:
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            self._conn.execute("CREATE TABLE IF NOT EXISTS paxis_schema (version INTEGER NOT NULL)")
            row = self._conn.execute("SELECT version FROM paxis_schema").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO paxis_schema (version) VALUES (0)")
                version = 0
            else:
                version = int(row[0])
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self._display} has schema version {version}, newer than this "
                    f"paxis_router understands ({SCHEMA_VERSION}); upgrade paxis_router"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute("UPDATE paxis_schema SET version = %s", (number + 1,))

    @property
    def schema_version(self) -> int:
        (version,) = self.query("SELECT version FROM paxis_schema")[0]
        return int(version)

    # --- writing ------------------------------------------------------------------------------

    def record(self, entry: CallRecord) -> None:
        """Persist one attempt in its own transaction. Raises LedgerError on failure."""
        self.record_many((entry,))

    def record_many(self, entries: Iterable[CallRecord]) -> None:
        """Persist several attempts in one transaction (all or none)."""
        batch = list(entries)
        rows = [record_to_row(entry) for entry in batch]
        rollups = rollup.rollup_params(batch, rows)
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cursor:
                    cursor.executemany(_INSERT, rows)
                    for name, params in rollups.items():
                        if params:
                            cursor.executemany(_UPSERTS[name], params)
            except self._psycopg.Error as exc:
                raise LedgerError(f"cannot write to ledger {self._display}: {exc}") from exc

    def label(
        self,
        route_id: str,
        *,
        correct: bool | None = None,
        score: float | None = None,
        source: str | None = None,
        attempt_index: int | None = None,
    ) -> None:
        """Attach a quality label that arrived later (replacing an earlier one): to the route's
        answer (its final attempt), or with ``attempt_index`` to that attempt's answer."""
        sql, params = label_statement(route_id, correct, score, source, attempt_index)
        with self._lock:
            try:
                self._conn.execute(sql.replace("?", "%s"), params)
            except self._psycopg.Error as exc:
                raise LedgerError(f"cannot write label to ledger {self._display}: {exc}") from exc

    # --- reading ------------------------------------------------------------------------------

    def rows(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        route_id: str | None = None,
    ) -> list[CallRecord]:
        """Attempts in insertion order, optionally within [since, until) or for one route."""
        where, params = attempts_filter(since=since, until=until, route_id=route_id)
        fetched = self.query(f"SELECT id, {_SELECT} FROM attempts{where} ORDER BY id", params)
        return [row_to_record(row) for row in fetched]

    def count(self) -> int:
        """The number of attempt rows."""
        (n,) = self.query("SELECT COUNT(*) FROM attempts")[0]
        return int(n)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query written with ``?`` placeholders (as for SQLite).

        ``?`` becomes ``%s`` and a literal ``%`` becomes ``%%``, so the SQL must not contain a
        ``?`` of its own (use ``jsonb`` functions, not the ``?`` operator).
        """
        text = sql.replace("%", "%%").replace("?", "%s")
        with self._lock:
            try:
                with self._conn.cursor() as cursor:
                    cursor.execute(text, tuple(params))
                    return list(cursor.fetchall())
            except self._psycopg.Error as exc:
                raise LedgerError(f"query failed on ledger {self._display}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _redact(url: str) -> str:
    """The URL with any password replaced, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
