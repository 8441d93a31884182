"""The default ledger: one SQLite file in WAL mode, one row per attempt.

``record`` never waits on the disk: it validates the attempt, queues its row and returns; a writer
thread commits queued rows in groups (``paxis_router.ledger.buffer``: what a crash can lose, how
failures surface). ``record_many`` writes its batch in one transaction and returns when it is
committed (all or none). Reads (``rows``, ``count``, ``query``) first wait for the rows recorded
before them, so a caller reads its own writes. The schema is versioned with
``PRAGMA user_version`` and migrated forward on open.

``read_only=True`` (reports and other readers) opens the file with SQLite's ``mode=ro``: nothing
is created, migrated or written, and a file that is not a paxis ledger is refused.

Example:
    >>> import tempfile, pathlib
    >>> ledger = SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "paxis.db")
    >>> ledger.count()
    0
    >>> ledger.close()
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.errors import LedgerError
from paxis_router.ledger import rollup
from paxis_router.ledger.buffer import BufferConfig, GroupWriter
from paxis_router.ledger.schema import (
    ADDED_COLUMNS,
    ATTEMPT_LABELS_TABLE,
    COLUMNS,
    attempts_filter,
    content_rows,
    format_ts,
    insert_sql,
    label_statement,
    parse_ts,
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
        id INTEGER PRIMARY KEY,
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
        final INTEGER NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s REAL NOT NULL,
        cost_ticks INTEGER,
        counterfactual_ticks INTEGER,
        verdicts TEXT NOT NULL,
        passed INTEGER NOT NULL,
        error TEXT,
        error_type TEXT,
        finish_reason TEXT,
        degraded INTEGER NOT NULL,
        budget_capped INTEGER NOT NULL,
        UNIQUE (route_id, attempt_index)
    );
    CREATE INDEX attempts_ts ON attempts (ts);
    CREATE INDEX attempts_team_ts ON attempts (team, ts);
    CREATE TABLE labels (
        route_id TEXT PRIMARY KEY,
        correct INTEGER,
        score REAL,
        source TEXT,
        labelled_at TEXT NOT NULL
    );
    """,
    # 2: daily rollups that record_many keeps up to date (see rollup.py), backfilled here.
    rollup.sqlite_migration(),
    # 3: prompt and answer text, written only by SQLiteLedger(store_content=True) (distill.py).
    """
    CREATE TABLE contents (
        route_id TEXT NOT NULL,
        attempt_index INTEGER NOT NULL,
        messages TEXT,
        content TEXT,
        PRIMARY KEY (route_id, attempt_index)
    );
    """,
    # 4: labels of one attempt's answer (a shadow call, an escalated worker answer); a route's
    # label in ``labels`` still means its final attempt (see _calibrate_ledger.py).
    ATTEMPT_LABELS_TABLE.format(flag="INTEGER", real="REAL"),
    # 5: shadow calls counted apart in rollup_daily (reports' "of which shadow"), backfilled.
    rollup.shadow_migration("sqlite", "INTEGER"),
    # 6: the newer CallRecord fields (token details, tools, task and step, tags), and rollups
    # keyed by one dimension at a time (rollup_dims, backfilled) in place of rollup_daily.
    ";\n".join(f"ALTER TABLE attempts ADD COLUMN {name} {kind}" for name, kind, _ in ADDED_COLUMNS)
    + ";\n"
    + rollup.dims_migration("sqlite", "INTEGER"),
)

SCHEMA_VERSION = len(MIGRATIONS)

_INSERT = insert_sql()
_INSERT_CONTENT = (
    "INSERT INTO contents (route_id, attempt_index, messages, content) VALUES (?, ?, ?, ?)"
)
_Item = tuple["CallRecord", tuple[Any, ...]]  # Any: a row's DB-API values


def _permanent(exc: BaseException) -> bool:
    """Errors in the data (a constraint), which no retry fixes; the rest (locked, I/O, disk
    full, read-only file) may pass, so their rows stay queued."""
    return isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError)


class SQLiteLedger:
    """A ledger in one SQLite file (WAL). Safe to share across threads and processes.

    Args:
        path: the database file; created with its parent folder when missing.
        busy_timeout_s: how long a writer waits for another process's lock.
        store_content: also keep each attempt's prompt (``CallRecord.messages``) and answer
            (``CallRecord.content``) in the ``contents`` table, for ``paxis distill export``.
            Off by default: no prompt or answer text is stored unless asked.
        read_only: open for reading only (reports): no migration, no write; raises LedgerError
            when the file is missing, is not a paxis ledger or has another schema version.
        buffer: how ``record`` buffers (see ``paxis_router.ledger.buffer``).

    The router calls ``check()`` before a paid call and ``record()`` after each attempt; the
    owner calls ``close()`` (or ``await aclose()``), which writes what is queued first.
    """

    dialect = "sqlite"  # read by report.py, which writes one SQL text per dialect where needed

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 30.0,
        store_content: bool = False,
        read_only: bool = False,
        buffer: BufferConfig | None = None,
    ):
        self.path = Path(path)
        self.store_content = store_content
        self.read_only = read_only
        self._lock = threading.Lock()
        self._writer: GroupWriter[_Item] | None = None
        if read_only:
            self._conn = _open_read_only(self.path, busy_timeout_s)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                check_same_thread=False,
                isolation_level=None,
            )
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(
                f"cannot open ledger {self.path}: {exc}; check that the folder exists and is "
                "writable, and that the file is a paxis ledger"
            ) from exc
        self._writer = GroupWriter(
            self._commit, describe=str(self.path), is_permanent=_permanent, config=buffer
        )

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema version {version}, newer than this paxis_router "
                f"understands ({SCHEMA_VERSION}); upgrade paxis_router"
            )
        if version == 0 and _has_tables(self._conn):
            raise LedgerError(
                f"{self.path} is not a paxis ledger (it has tables of its own and no paxis "
                "schema version); refusing to add tables to it"
            )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        for number in range(version, SCHEMA_VERSION):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {number + 1}")
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        with self._lock:
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        return int(version)

    # --- writing ------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise LedgerError when an attempt recorded now could not be written now (writer
        failing, too much queued, closed, read-only). Never waits: call it before a paid call."""
        self._require_writer().check()

    def record(self, entry: CallRecord) -> None:
        """Queue one attempt for the writer thread and return (never waits on the disk).

        Raises LedgerError at once for a row that cannot be stored (a naive timestamp) or a
        closed ledger; write errors surface in ``check()``, ``flush()`` and ``close()``."""
        writer = self._require_writer()
        writer.submit(((entry, record_to_row(entry)),))

    def record_many(self, entries: Iterable[CallRecord]) -> None:
        """Persist several attempts in one transaction (all or none) and return once committed,
        after every attempt recorded before. Raises LedgerError on failure."""
        writer = self._require_writer()
        items = [(entry, record_to_row(entry)) for entry in entries]
        writer.flush()
        try:
            self._commit(items, False)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from exc

    def _commit(self, items: Sequence[_Item], retry: bool) -> None:
        """Rows, contents and rollups of ``items`` in one transaction (raises sqlite3.Error)."""
        entries = [entry for entry, _ in items]
        rows = [row for _, row in items]
        rollups = rollup.rollup_params(entries, rows)
        contents = content_rows(entries) if self.store_content else ()
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                if contents:
                    conn.executemany(_INSERT_CONTENT, contents)
                for name, params in rollups.items():
                    if params:
                        conn.executemany(rollup.UPSERTS[name], params)
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

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
        with self._lock:
            try:
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write label to ledger {self.path}: {exc}") from exc

    def _require_writer(self) -> GroupWriter[_Item]:
        if self._writer is None:
            raise LedgerError(f"ledger {self.path} is open read-only; nothing can be recorded")
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
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM attempts{where} ORDER BY id"
        return [row_to_record(row) for row in self.query(sql, params)]

    def count(self) -> int:
        """The number of attempt rows (after the attempts recorded before this call)."""
        (n,) = self.query("SELECT COUNT(*) FROM attempts")[0]
        return int(n)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query (reports aggregate in the database with it), after the
        attempts recorded before this call are written."""
        if self._writer is not None:
            self._writer.sync()
        with self._lock:
            try:
                return list(self._conn.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise LedgerError(f"query failed on ledger {self.path}: {exc}") from exc

    # --- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued, then close. Raises LedgerError (after closing) for attempts
        that could not be written; closing twice does nothing."""
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            with self._lock:
                self._conn.close()

    async def aclose(self) -> None:
        """``close`` for async callers (runs in a thread)."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> SQLiteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_tables(conn: sqlite3.Connection) -> bool:
    (n,) = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    return int(n) > 0


def _open_read_only(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open ``path`` with ``mode=ro`` and check that it is a paxis ledger of this schema.

    A WAL database in a read-only folder cannot be opened with ``mode=ro`` alone while its
    ``-shm`` file is missing (SQLite must create it); with no ``-wal`` file beside it every
    committed row is in the main file and no writer can be active (a writer needs the -wal), so
    it is opened as ``immutable`` then, as SQLite documents for read-only media.
    """
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}; give the path of a paxis ledger")
    uri = path.resolve().as_uri()
    try:
        try:
            conn = _connect_ro(f"{uri}?mode=ro", busy_timeout_s)
        except sqlite3.OperationalError:
            if Path(f"{path}-wal").exists():
                raise
            conn = _connect_ro(f"{uri}?mode=ro&immutable=1", busy_timeout_s)
    except sqlite3.DatabaseError as exc:
        raise LedgerError(
            f"{path} is not a paxis ledger, or cannot be read ({exc}); nothing was changed"
        ) from exc
    try:
        has_attempts = conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'attempts'"
        ).fetchone()[0]
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LedgerError(
            f"{path} is not a paxis ledger (not a SQLite database: {exc}); nothing was changed"
        ) from exc
    if not has_attempts or version == 0:
        conn.close()
        raise LedgerError(
            f"{path} is not a paxis ledger (no attempts table or paxis schema version); "
            "nothing was changed"
        )
    if version != SCHEMA_VERSION:
        conn.close()
        newer = version > SCHEMA_VERSION
        raise LedgerError(
            f"ledger {path} has schema version {version}, "
            + (
                f"newer than this paxis_router understands ({SCHEMA_VERSION}); upgrade paxis_router"
                if newer
                else f"older than this paxis_router reads ({SCHEMA_VERSION}); open it once "
                "read-write to migrate it (a router using it does, or open_ledger(path))"
            )
        )
    return conn


def _connect_ro(uri: str, busy_timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
    )
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the file now
    except sqlite3.Error:
        conn.close()
        raise
    return conn


# Re-exported for modules that imported them from here before ledger/schema.py existed.
__all__ = [
    "COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteLedger",
    "attempts_filter",
    "content_rows",
    "format_ts",
    "label_statement",
    "parse_ts",
    "record_to_row",
    "row_to_record",
]
