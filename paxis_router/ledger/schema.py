"""The ledger's row schema, shared by every SQL backend (SQLite, PostgreSQL).

One place says which columns an attempt row has, how a ``CallRecord`` becomes a row and back,
how timestamps are written (sortable UTC text) and how money is stored (INTEGER ticks of 1e-10
USD, so that SQL sums are exact and fast; the Python side sees ``Decimal`` only; NULL means
unknown, never 0). SQL text uses ``?`` placeholders; PostgreSQL translates them.

Long free text is capped when it is recorded: ``error``, ``reason`` and each verdict's reason keep
their first ``MAX_TEXT_BYTES`` bytes (UTF-8) and end with a marker that gives the original length,
so a 20 MB error body costs 4 KiB per column, not 20 MB.

Example:
    >>> from datetime import UTC, datetime
    >>> format_ts(datetime(2026, 11, 1, 9, 30, tzinfo=UTC))
    '2026-11-01T09:30:00.000000Z'
    >>> capped = cap_text("x" * 5000)
    >>> len(capped.encode("utf-8")), capped.endswith("x… [truncated: 5000 bytes in all]")
    (4096, True)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from paxis_router.errors import LedgerError
from paxis_router.types import CallRecord, Decision, Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

USD_TICK = Decimal("1e-10")
TICKS_PER_USD = 10_000_000_000
MAX_TEXT_BYTES = 4096

# The attempt columns in row order (``record_to_row``). The first 25 are schema 1's; the rest came
# with later migrations (SQLite 6, PostgreSQL 4). ``tools`` is a JSON array of tool names in call
# order, ``tags`` a JSON object of str -> str; both NULL when empty.
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
    "cached_prompt_tokens",
    "reasoning_tokens",
    "tools",
    "task_id",
    "step",
    "tags",
)
# Positions of the columns the rollups read (rollup.py), so both stay in step with COLUMNS.
COL = {name: i for i, name in enumerate(COLUMNS)}
# Columns a later migration added: (name, SQLite type, PostgreSQL type).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("cached_prompt_tokens", "INTEGER", "INTEGER"),
    ("reasoning_tokens", "INTEGER", "INTEGER"),
    ("tools", "TEXT", "JSONB"),
    ("task_id", "TEXT", "TEXT"),
    ("step", "INTEGER", "INTEGER"),
    ("tags", "TEXT", "JSONB"),
)

# Attempt-level labels (SQLite migration 4, PostgreSQL 2); ``{flag}``/``{real}``: column types.
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


SCHEMA_1_COLUMNS = COLUMNS[:25]


def insert_sql(placeholder: str = "?", columns: Sequence[str] = COLUMNS) -> str:
    """The INSERT of one attempt row (``columns``, default ``COLUMNS``) with ``placeholder``;
    ``SCHEMA_1_COLUMNS`` with the first 25 values of a row writes a schema-1 table."""
    return (
        f"INSERT INTO attempts ({', '.join(columns)}) "
        f"VALUES ({', '.join([placeholder] * len(columns))})"
    )


# --- money ------------------------------------------------------------------------------------


def usd_to_ticks(value: Decimal | None) -> int | None:
    """Decimal USD -> integer ticks of 1e-10 USD (banker's rounding); None stays None."""
    if value is None:
        return None
    # scaleb(10) is an exact shift of the exponent: the same value as value / USD_TICK, faster;
    # int() alone is exact when there is nothing below a tick (the common case).
    scaled = value.scaleb(10)
    whole = int(scaled)
    if whole == scaled:
        return whole
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def ticks_to_usd(value: int | None) -> Decimal | None:
    """Integer ticks -> Decimal USD; None stays None."""
    if value is None:
        return None
    return Decimal(value) * USD_TICK


# --- timestamps -------------------------------------------------------------------------------

_TS = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def format_ts(ts: datetime) -> str:
    """Aware datetime -> the ledger's sortable UTC text form (``2026-11-01T09:30:00.000000Z``)."""
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise LedgerError(f"timestamp {ts!r} is naive; ledger timestamps must be aware UTC")
        ts = ts.astimezone(UTC)
    # %-formatting of the fields is about twice as fast as isoformat() or strftime().
    return _TS % (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond)


def parse_ts(text: str) -> datetime:
    """The ledger's timestamp text -> an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --- text caps --------------------------------------------------------------------------------


def cap_text(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """``text`` if its UTF-8 form fits in ``limit`` bytes; else its head, cut on a character
    boundary, then ``… [truncated: N bytes in all]`` (N: the original UTF-8 length), ``limit``
    bytes in all."""
    if len(text) * 4 <= limit:  # a character is at most 4 bytes in UTF-8: fits for sure
        return text
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text
    marker = f"… [truncated: {len(data)} bytes in all]"
    room = limit - len(marker.encode("utf-8"))
    return data[: max(room, 0)].decode("utf-8", errors="ignore") + marker


def _cap_optional(text: str | None) -> str | None:
    return None if text is None else cap_text(text)


# --- rows -------------------------------------------------------------------------------------

# json's C string escaper: verdict rows are built as text around it, much faster than encoding
# a list of dicts per row (the output is the same compact JSON).
_quote = json.encoder.encode_basestring_ascii
_dumps_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, sort_keys=True).encode


def verdicts_json(verdicts: Sequence[Verdict]) -> str:
    """Verdicts as the compact JSON array stored in ``verdicts`` (reasons capped)."""
    if not verdicts:
        return "[]"
    if len(verdicts) == 1:  # the common case, without a list and a join
        v = verdicts[0]
        return (
            f'[{{"verifier":{_quote(v.verifier)},"passed":{"true" if v.passed else "false"},'
            f'"score":{_score_json(v.score)},"reason":{_quote(cap_text(v.reason))}}}]'
        )
    parts = [
        f'{{"verifier":{_quote(v.verifier)},"passed":{"true" if v.passed else "false"},'
        f'"score":{_score_json(v.score)},"reason":{_quote(cap_text(v.reason))}}}'
        for v in verdicts
    ]
    return f"[{','.join(parts)}]"


def _score_json(score: float | None) -> str:
    if score is None:
        return "null"
    return json.dumps(float(score))


def tools_json(tools: Sequence[str]) -> str | None:
    """Tool names as a JSON array (call order kept), or None when no tool was called."""
    if not tools:
        return None
    return f"[{','.join(_quote(t) for t in tools)}]"


def tags_json(tags: Mapping[str, str]) -> str | None:
    """Tags as a compact JSON object with sorted keys, or None when there are none."""
    if not tags:
        return None
    return str(_dumps_compact({str(k): str(v) for k, v in tags.items()}))


def record_to_row(entry: CallRecord) -> tuple[Any, ...]:  # Any: a DB-API parameter tuple
    """A CallRecord as the parameter tuple for ``COLUMNS`` (free text capped, see the module)."""
    e = entry
    return (
        e.route_id,
        e.request_id,
        e.attempt_index,
        format_ts(e.ts),
        e.team,
        e.skill,
        e.data_class,
        e.tier,
        e.tier_index,
        e.model,
        e.decision.value,
        cap_text(e.reason),
        1 if e.final else 0,
        e.prompt_tokens,
        e.completion_tokens,
        e.latency_s,
        None if e.cost_usd is None else usd_to_ticks(e.cost_usd),
        None if e.counterfactual_usd is None else usd_to_ticks(e.counterfactual_usd),
        verdicts_json(e.verdicts),
        1 if e.passed else 0,
        None if e.error is None else cap_text(e.error),
        e.error_type,
        e.finish_reason,
        1 if e.degraded else 0,
        1 if e.budget_capped else 0,
        e.cached_prompt_tokens,
        e.reasoning_tokens,
        tools_json(e.tools) if e.tools else None,
        e.task_id,
        e.step,
        tags_json(e.tags) if e.tags else None,
    )


def row_to_record(row: Sequence[Any]) -> CallRecord:  # Any: a DB-API result row
    """A result row of ``SELECT id, <COLUMNS>`` back into a CallRecord (JSON columns as text)."""
    values = dict(zip(COLUMNS, row[1:], strict=True))
    verdicts = tuple(Verdict(**v) for v in json.loads(values["verdicts"]))
    tools = values["tools"]
    tags = values["tags"]
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
        cached_prompt_tokens=values["cached_prompt_tokens"],
        reasoning_tokens=values["reasoning_tokens"],
        tools=() if tools is None else tuple(json.loads(tools)),
        task_id=values["task_id"],
        step=values["step"],
        tags={} if tags is None else dict(json.loads(tags)),
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


# --- statements shared by every backend --------------------------------------------------------


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
