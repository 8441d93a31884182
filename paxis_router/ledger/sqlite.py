"""The default ledger: one SQLite file in WAL mode, one row per attempt.

Each ``record`` is its own committed transaction, so a crash loses nothing already recorded.
The schema is versioned with ``PRAGMA user_version`` and migrated forward on open.

Example:
    >>> import tempfile, pathlib
    >>> ledger = SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "paxis.db")
    >>> ledger.count()
    0
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.errors import LedgerError
from paxis_router.ledger import rollup
from paxis_router.ledger.base import ticks_to_usd, usd_to_ticks
from paxis_router.types import CallRecord, Decision, Verdict

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# Attempt-level labels (migration 4 here, 2 in postgres.py); ``{flag}``/``{real}``: column types.
ATTEMPT_LABELS_TABLE = """
    CREATE TABLE attempt_labels (
        route_id TEXT NOT NULL,
        attempt_index INTEGER NOT NULL,
        correct {flag},
        score {real},
        source TEXT,
        labelled_at TEXT NOT NULL,
        PRIMARY KEY (route_id, attempt_index)
    );
    """

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
)

SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS: tuple[str, ...] = (
    "route_id",
    "request_id",
    "attempt_index",
    "ts",
    "team",
    "skill",
    "data_class",
    "tier",
    "tier_index",
    "model",
    "decision",
    "reason",
    "final",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "cost_ticks",
    "counterfactual_ticks",
    "verdicts",
    "passed",
    "error",
    "error_type",
    "finish_reason",
    "degraded",
    "budget_capped",
)
_INSERT = f"INSERT INTO attempts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


_INSERT_CONTENT = (
    "INSERT INTO contents (route_id, attempt_index, messages, content) VALUES (?, ?, ?, ?)"
)


def content_rows(entries: Sequence[CallRecord]) -> list[tuple[str, int, str | None, str | None]]:
    """The ``contents`` rows of the entries that carry a prompt or an answer."""
    return [
        (
            e.route_id,
            e.attempt_index,
            None
            if e.messages is None
            else json.dumps([m.model_dump(exclude_none=True) for m in e.messages]),
            e.content,
        )
        for e in entries
        if e.messages is not None or e.content is not None
    ]


def format_ts(ts: datetime) -> str:
    """Aware datetime -> the ledger's sortable UTC text form."""
    if ts.tzinfo is None:
        raise LedgerError(f"timestamp {ts!r} is naive; ledger timestamps must be aware UTC")
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    # isoformat is the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), about 25 % faster.
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# json's C string escaper: verdict rows are built as text around it, much faster than encoding
# a list of dicts per row (the output is the same compact JSON).
_quote = json.encoder.encode_basestring_ascii


def attempts_filter(
    *, since: datetime | None, until: datetime | None, route_id: str | None
) -> tuple[str, list[Any]]:  # Any: DB-API parameters
    """The WHERE clause (with ``?`` placeholders) and parameters selecting attempts within
    [since, until) and/or of one route; shared by every ledger backend."""
    clauses: list[str] = []
    params: list[Any] = []  # Any: DB-API parameters
    if since is not None:
        clauses.append("ts >= ?")
        params.append(format_ts(since))
    if until is not None:
        clauses.append("ts < ?")
        params.append(format_ts(until))
    if route_id is not None:
        clauses.append("route_id = ?")
        params.append(route_id)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _verdicts_json(verdicts: Sequence[Verdict]) -> str:
    if not verdicts:
        return "[]"
    parts = [
        f'{{"verifier":{_quote(v.verifier)},"passed":{"true" if v.passed else "false"},'
        f'"score":{_score_json(v.score)},"reason":{_quote(v.reason)}}}'
        for v in verdicts
    ]
    return f"[{','.join(parts)}]"


def _score_json(score: float | None) -> str:
    if score is None:
        return "null"
    return json.dumps(float(score))


def label_statement(
    route_id: str,
    correct: bool | None,
    score: float | None,
    source: str | None,
    attempt_index: int | None,
) -> tuple[str, tuple[Any, ...]]:  # Any: DB-API parameters
    """The upsert (``?`` placeholders) writing one route label or, with ``attempt_index``, one
    attempt label; shared by every ledger backend. Raises LedgerError for an empty label."""
    if correct is None and score is None:
        raise LedgerError(f"label for route {route_id!r} needs correct= or score=")
    flag = None if correct is None else int(correct)
    now = format_ts(datetime.now(UTC))
    update = (
        "DO UPDATE SET correct = excluded.correct, score = excluded.score, "
        "source = excluded.source, labelled_at = excluded.labelled_at"
    )
    if attempt_index is None:
        return (
            "INSERT INTO labels (route_id, correct, score, source, labelled_at) "
            f"VALUES (?, ?, ?, ?, ?) ON CONFLICT (route_id) {update}",
            (route_id, flag, score, source, now),
        )
    if attempt_index < 0:
        raise LedgerError(f"label for route {route_id!r}: attempt_index must be >= 0")
    return (
        "INSERT INTO attempt_labels (route_id, attempt_index, correct, score, source, "
        f"labelled_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (route_id, attempt_index) {update}",
        (route_id, attempt_index, flag, score, source, now),
    )


def record_to_row(entry: CallRecord) -> tuple[Any, ...]:  # Any: a DB-API parameter tuple
    """A CallRecord as the parameter tuple for ``COLUMNS``."""
    return (
        entry.route_id,
        entry.request_id,
        entry.attempt_index,
        format_ts(entry.ts),
        entry.team,
        entry.skill,
        entry.data_class,
        entry.tier,
        entry.tier_index,
        entry.model,
        str(entry.decision),
        entry.reason,
        int(entry.final),
        entry.prompt_tokens,
        entry.completion_tokens,
        entry.latency_s,
        usd_to_ticks(entry.cost_usd),
        usd_to_ticks(entry.counterfactual_usd),
        _verdicts_json(entry.verdicts),
        int(entry.passed),
        entry.error,
        entry.error_type,
        entry.finish_reason,
        int(entry.degraded),
        int(entry.budget_capped),
    )


def row_to_record(row: Sequence[Any]) -> CallRecord:  # Any: a DB-API result row
    """A result row of ``SELECT id, <COLUMNS>`` back into a CallRecord."""
    values = dict(zip(COLUMNS, row[1:], strict=True))
    verdicts = tuple(Verdict(**v) for v in json.loads(values["verdicts"]))
    return CallRecord(
        id=row[0],
        route_id=values["route_id"],
        request_id=values["request_id"],
        attempt_index=values["attempt_index"],
        ts=parse_ts(values["ts"]),
        team=values["team"],
        skill=values["skill"],
        data_class=values["data_class"],
        tier=values["tier"],
        tier_index=values["tier_index"],
        model=values["model"],
        decision=Decision(values["decision"]),
        reason=values["reason"],
        final=bool(values["final"]),
        prompt_tokens=values["prompt_tokens"],
        completion_tokens=values["completion_tokens"],
        latency_s=values["latency_s"],
        cost_usd=ticks_to_usd(values["cost_ticks"]),
        counterfactual_usd=ticks_to_usd(values["counterfactual_ticks"]),
        verdicts=verdicts,
        passed=bool(values["passed"]),
        error=values["error"],
        error_type=values["error_type"],
        finish_reason=values["finish_reason"],
        degraded=bool(values["degraded"]),
        budget_capped=bool(values["budget_capped"]),
    )


class SQLiteLedger:
    """A ledger in one SQLite file (WAL). Safe to share across threads and processes.

    Args:
        path: the database file; created with its parent folder when missing.
        busy_timeout_s: how long a writer waits for another process's lock.
        store_content: also keep each attempt's prompt (``CallRecord.messages``) and answer
            (``CallRecord.content``) in the ``contents`` table, for ``paxis distill export``.
            Off by default: no prompt or answer text is stored unless asked.
    """

    dialect = "sqlite"  # read by report.py, which writes one SQL text per dialect where needed

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 30.0, store_content: bool = False
    ):
        self.path = Path(path)
        self.store_content = store_content
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                check_same_thread=False,
                isolation_level=None,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(
                f"cannot open ledger {self.path}: {exc}; check that the folder exists and is "
                "writable, and that the file is a paxis ledger"
            ) from exc

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema version {version}, newer than this paxis_router "
                f"understands ({SCHEMA_VERSION}); upgrade paxis_router"
            )
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
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(_INSERT, rows)
                if self.store_content:
                    self._conn.executemany(_INSERT_CONTENT, content_rows(batch))
                for name, params in rollups.items():
                    self._conn.executemany(rollup.UPSERTS[name], params)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from exc

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
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write label to ledger {self.path}: {exc}") from exc

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
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM attempts{where} ORDER BY id"
        with self._lock:
            fetched = self._conn.execute(sql, params).fetchall()
        return [row_to_record(row) for row in fetched]

    def count(self) -> int:
        """The number of attempt rows."""
        with self._lock:
            (n,) = self._conn.execute("SELECT COUNT(*) FROM attempts").fetchone()
        return int(n)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query (reports aggregate in the database with it)."""
        with self._lock:
            try:
                return list(self._conn.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise LedgerError(f"query failed on ledger {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
