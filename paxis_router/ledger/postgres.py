"""The same ledger in PostgreSQL, by URL, so a fleet of routers shares one ledger (psycopg 3).

The schema mirrors :mod:`paxis_router.ledger.sqlite` column for column (both come from
:mod:`paxis_router.ledger.schema`): money as BIGINT ticks of 1e-10 USD, timestamps as the same
sortable UTC text, flags as SMALLINT 0/1; ``verdicts``, ``tools`` and ``tags`` are ``jsonb``
here. Keeping the types alike lets :mod:`paxis_router.reports.cost_report` run one SQL text on
both backends (``?`` placeholders are translated to psycopg's ``%s`` by
:meth:`PostgresLedger.query`). Needs the ``[postgres]`` extra (psycopg and psycopg-pool).

Connections come from a ``psycopg_pool.ConnectionPool`` that checks each connection before
handing it out and reconnects in the background, so the ledger carries on after the server
restarts or fails over. ``record`` never waits on the network: a writer thread commits queued
rows in groups (``paxis_router.ledger.buffer``); while the server cannot be reached the rows stay
queued and ``check()`` raises, so the router refuses paid calls until it is back.

Example:
    >>> ledger = PostgresLedger("postgresql://paxis@127.0.0.1:5432/paxis")  # doctest: +SKIP
    >>> ledger.count()  # doctest: +SKIP
    0
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from paxis_router.errors import LedgerError
from paxis_router.ledger import rollup
from paxis_router.ledger.buffer import BufferConfig, GroupWriter
from paxis_router.ledger.schema import (
    ADDED_COLUMNS,
    ATTEMPT_LABELS_TABLE,
    COLUMNS,
    attempts_filter,
    insert_sql,
    label_statement,
    record_to_row,
    row_to_record,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    import psycopg
    from psycopg_pool import ConnectionPool

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
    # 4: the newer CallRecord fields and rollup_dims in place of rollup_daily (as SQLite's 6).
    ";\n".join(f"ALTER TABLE attempts ADD COLUMN {name} {kind}" for name, _, kind in ADDED_COLUMNS)
    + ";\n"
    + rollup.dims_migration("postgresql", "BIGINT"),
)

SCHEMA_VERSION = len(MIGRATIONS)
_INSERT = insert_sql("%s")
_UPSERTS = {name: sql.replace("?", "%s") for name, sql in rollup.UPSERTS.items()}
_JSON_COLUMNS = ("verdicts", "tools", "tags")
_SELECT = ", ".join(f"{c}::text" if c in _JSON_COLUMNS else c for c in COLUMNS)
# A lock number of our own, so concurrent first opens migrate one at a time.
_MIGRATION_LOCK = 7_274_911
_Item = tuple["CallRecord", tuple[Any, ...]]  # Any: a row's DB-API values


class PostgresLedger:
    """A ledger in PostgreSQL with the same methods as ``SQLiteLedger``.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/dbname``. Keep passwords out of
            config files: libpq also reads ``PGPASSWORD`` and ``~/.pgpass``.
        connect_timeout_s: how long to wait for the server (to connect, or for a pooled
            connection).
        read_only: open for reading only (reports): no migration; every session is
            ``default_transaction_read_only``; raises LedgerError when the database holds no
            paxis ledger of this schema version.
        pool_size: the most connections this object opens (the writer uses one at a time).
        buffer: how ``record`` buffers (see ``paxis_router.ledger.buffer``).

    Each commit is one transaction, rows and rollups together. Writers on many machines share
    the rollup rows of a day: the upserts take their row locks in one sorted order, so
    concurrent batches wait for each other but never deadlock.
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 10.0,
        read_only: bool = False,
        pool_size: int = 4,
        buffer: BufferConfig | None = None,
    ):
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self.read_only = read_only
        self._display = _redact(url)
        self._psycopg = psycopg
        self._timeout_s = connect_timeout_s
        kwargs: dict[str, Any] = {  # Any: libpq connection parameters
            "autocommit": True,
            "connect_timeout": max(1, round(connect_timeout_s)),
        }
        if read_only:
            kwargs["options"] = "-c default_transaction_read_only=on"
        try:
            # One direct connection first: its errors say what is wrong (the pool's say less).
            with psycopg.connect(url, **kwargs) as conn:
                if read_only:
                    self._verify(conn)
                else:
                    self._migrate(conn)
        except psycopg.Error as exc:
            raise LedgerError(
                f"cannot open ledger {self._display}: {exc}; check the URL, that the server is "
                "running and that the user may create tables"
            ) from exc
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout_s,
            # The pool retries a lost connection with backoff (1, 2, 4 s ...) and gives up after
            # this; the writer then asks again, which starts a fresh attempt at once. So the
            # ledger writes again within seconds of the server's return, however long it was out.
            reconnect_timeout=max(10.0, 2 * connect_timeout_s),
            name=f"paxis-ledger {self._display}",
        )
        self._pool.open(wait=False)
        self._writer: GroupWriter[_Item] | None = None
        if not read_only:
            self._writer = GroupWriter(
                self._commit,
                describe=self._display,
                is_permanent=self._permanent,
                probe=self._probe,
                config=buffer,
            )

    def _migrate(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS paxis_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM paxis_schema").fetchone()
            if row is None:
                conn.execute("INSERT INTO paxis_schema (version) VALUES (0)")
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
                        conn.execute(statement)
                conn.execute("UPDATE paxis_schema SET version = %s", (number + 1,))

    def _verify(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        (table,) = conn.execute("SELECT to_regclass('paxis_schema')::text").fetchone() or (None,)
        row = conn.execute("SELECT version FROM paxis_schema").fetchone() if table else None
        if row is None:
            raise LedgerError(
                f"{self._display} holds no paxis ledger (no paxis_schema table); nothing was "
                "changed"
            )
        version = int(row[0])
        if version != SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self._display} has schema version {version}, this paxis_router reads "
                f"{SCHEMA_VERSION}: "
                + (
                    "upgrade paxis_router"
                    if version > SCHEMA_VERSION
                    else "open it once read-write to migrate it (a router using it does)"
                )
            )

    @property
    def schema_version(self) -> int:
        (version,) = self.query("SELECT version FROM paxis_schema")[0]
        return int(version)

    # --- writing ------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise LedgerError when an attempt recorded now could not be written now (server
        unreachable as last seen by the writer or its probe, too much queued, closed,
        read-only). Never waits on the network: call it before a paid call."""
        self._require_writer().check()

    def record(self, entry: CallRecord) -> None:
        """Queue one attempt for the writer thread and return (no network round trip).

        Raises LedgerError at once for a row that cannot be stored (a naive timestamp) or a
        closed ledger; write errors surface in ``check()``, ``flush()`` and ``close()``."""
        self._require_writer().submit(((entry, record_to_row(entry)),))

    def record_many(self, entries: Iterable[CallRecord]) -> None:
        """Persist several attempts in one transaction (all or none) and return once committed,
        after every attempt recorded before. Raises LedgerError on failure."""
        writer = self._require_writer()
        items = [(entry, record_to_row(entry)) for entry in entries]
        writer.flush()
        try:
            self._commit(items, False)
        except self._psycopg.Error as exc:
            raise LedgerError(f"cannot write to ledger {self._display}: {exc}") from exc

    def _commit(self, items: Sequence[_Item], retry: bool) -> None:
        """Rows and rollups of ``items`` in one transaction (raises psycopg.Error). On a retry,
        rows already in the ledger (a commit whose answer the network lost) are left out."""
        with self._pool.connection(timeout=self._timeout_s) as conn:
            if retry:
                items = self._unwritten(conn, items)
                if not items:
                    return
            entries = [entry for entry, _ in items]
            rows = [row for _, row in items]
            rollups = rollup.rollup_params(entries, rows)
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_INSERT, rows)
                for name, params in rollups.items():
                    if params:
                        cursor.executemany(_UPSERTS[name], params)

    def _unwritten(
        self, conn: psycopg.Connection[tuple[Any, ...]], items: Sequence[_Item]
    ) -> list[_Item]:
        found = conn.execute(
            "SELECT route_id, attempt_index FROM attempts a JOIN unnest(%s::text[], %s::int[]) "
            "AS k(r, i) ON a.route_id = k.r AND a.attempt_index = k.i",
            ([e.route_id for e, _ in items], [e.attempt_index for e, _ in items]),
        ).fetchall()
        there = {(str(r), int(i)) for r, i in found}
        return [item for item in items if (item[0].route_id, item[0].attempt_index) not in there]

    def _permanent(self, exc: BaseException) -> bool:
        """Errors in the data, which no retry fixes; connection and server errors may pass."""
        errors = self._psycopg
        return isinstance(exc, errors.IntegrityError | errors.DataError | errors.ProgrammingError)

    def _probe(self) -> None:
        with self._pool.connection(timeout=self._timeout_s) as conn:
            conn.execute("SELECT 1")

    def flush(self, timeout_s: float | None = None) -> None:
        """Return once every attempt recorded before is committed. Raises LedgerError for
        attempts the database refused, or when they are not written within ``timeout_s``
        (default: ``BufferConfig.flush_timeout_s``; they stay queued and are retried)."""
        if self._writer is not None:
            self._writer.flush(timeout_s)

    async def drain(self) -> None:
        """``flush`` for async callers (runs in a thread: the event loop is not blocked)."""
        await asyncio.to_thread(self.flush)

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
        self._require_writer()
        sql, params = label_statement(route_id, correct, score, source, attempt_index)
        try:
            with self._pool.connection(timeout=self._timeout_s) as conn:
                conn.execute(sql.replace("?", "%s"), params)
        except self._psycopg.Error as exc:
            raise LedgerError(f"cannot write label to ledger {self._display}: {exc}") from exc

    def _require_writer(self) -> GroupWriter[_Item]:
        if self._writer is None:
            raise LedgerError(f"ledger {self._display} is open read-only; nothing can be recorded")
        return self._writer

    # --- reading ------------------------------------------------------------------------------

    def rows(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        route_id: str | None = None,
    ) -> list[CallRecord]:
        """Attempts in insertion order, optionally within [since, until) or for one route
        (after the attempts recorded before this call are written)."""
        where, params = attempts_filter(since=since, until=until, route_id=route_id)
        fetched = self.query(f"SELECT id, {_SELECT} FROM attempts{where} ORDER BY id", params)
        return [row_to_record(row) for row in fetched]

    def count(self) -> int:
        """The number of attempt rows (after the attempts recorded before this call)."""
        (n,) = self.query("SELECT COUNT(*) FROM attempts")[0]
        return int(n)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query written with ``?`` placeholders (as for SQLite), after the
        attempts recorded before this call are written.

        ``?`` becomes ``%s`` and a literal ``%`` becomes ``%%``, so the SQL must not contain a
        ``?`` of its own (use ``jsonb`` functions, not the ``?`` operator).
        """
        if self._writer is not None:
            self._writer.sync()
        text = sql.replace("%", "%%").replace("?", "%s")
        try:
            with self._pool.connection(timeout=self._timeout_s) as conn, conn.cursor() as cursor:
                cursor.execute(text, tuple(params))
                return list(cursor.fetchall())
        except self._psycopg.Error as exc:
            raise LedgerError(f"query failed on ledger {self._display}: {exc}") from exc

    # --- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued, then close the pool. Raises LedgerError (after closing) for
        attempts that could not be written; closing twice does nothing."""
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._pool.close()

    async def aclose(self) -> None:
        """``close`` for async callers (runs in a thread)."""
        await asyncio.to_thread(self.close)

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
