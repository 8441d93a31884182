"""Daily rollups written beside the attempt rows, so reports over millions of rows stay fast.

``record_many`` aggregates its batch in Python (one upsert per distinct key, not per row) and
upserts, in the same transaction as the rows:

* ``rollup_daily``: counts and tick sums per (day, team, skill, tier, model, data_class),
  shadow calls (decision ``shadow``) also counted apart (``SHADOW_COUNTS``, added by a later
  migration: ``shadow_migration``);
* ``latency_daily``: a latency histogram per (day, tier, model), buckets of 2 significant digits;
* ``verdicts_daily``: verdicts and passes per (day, verifier);
* ``reasons_daily``: escalation reasons per (day, reason).

Days are UTC dates (the first 10 characters of the ledger's timestamp text). Missing team, skill
and data_class are stored as ``(none)`` (key columns must not be NULL for the upsert to match).
Used by the SQLite and PostgreSQL ledgers; SQL uses ``?`` placeholders.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from paxis_router.types import Decision

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.types import CallRecord

NONE = "(none)"

# The columns as the first rollup migration created them: never edit (old migrations use it).
ROLLUP_COUNTS_V1 = (
    "attempts",
    "routes",
    "escalated",
    "cost_ticks",
    "unknown_cost",
    "cf_ticks",
    "unknown_cf",
    "accepted",
    "capped",
    "degraded",
    "prompt_tokens",
    "completion_tokens",
)
# Shadow calls (``paxis_router.shadow``): how many, their known cost, how many had no price.
SHADOW_COUNTS = ("shadow_attempts", "shadow_ticks", "shadow_unknown_cost")
ROLLUP_COUNTS = (*ROLLUP_COUNTS_V1, *SHADOW_COUNTS)
ROLLUP_KEYS = ("day", "team", "skill", "tier", "model", "data_class")


def schema(big: str, real: str) -> tuple[str, ...]:
    """CREATE statements as the first rollup migration ran them (``ROLLUP_COUNTS_V1``; later
    columns come from later migrations); ``big`` is the 64-bit integer type, ``real`` the float
    type."""
    counts = ",\n".join(f"{c} {big} NOT NULL" for c in ROLLUP_COUNTS_V1)
    keys = ", ".join(ROLLUP_KEYS)
    return (
        f"CREATE TABLE rollup_daily ({', '.join(f'{k} TEXT NOT NULL' for k in ROLLUP_KEYS)},"
        f" {counts}, PRIMARY KEY ({keys}))",
        f"CREATE TABLE latency_daily (day TEXT NOT NULL, tier TEXT NOT NULL, model TEXT NOT NULL,"
        f" bucket_s {real} NOT NULL, n {big} NOT NULL, PRIMARY KEY (day, tier, model, bucket_s))",
        f"CREATE TABLE verdicts_daily (day TEXT NOT NULL, verifier TEXT NOT NULL, n {big} NOT NULL,"
        f" passed {big} NOT NULL, PRIMARY KEY (day, verifier))",
        f"CREATE TABLE reasons_daily (day TEXT NOT NULL, reason TEXT NOT NULL, n {big} NOT NULL,"
        " PRIMARY KEY (day, reason))",
    )


# The same aggregates over raw attempt rows (alias ``a``), in ROLLUP_COUNTS order.
RAW_COUNTS_V1 = (
    "COUNT(*)",
    "SUM(a.final)",
    "SUM(CASE WHEN a.final = 1 AND a.attempt_index > 0 THEN 1 ELSE 0 END)",
    "COALESCE(SUM(a.cost_ticks), 0)",
    "SUM(CASE WHEN a.cost_ticks IS NULL THEN 1 ELSE 0 END)",
    "COALESCE(SUM(CASE WHEN a.final = 1 THEN a.counterfactual_ticks END), 0)",
    "SUM(CASE WHEN a.final = 1 AND a.counterfactual_ticks IS NULL THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN a.final = 1 AND a.decision = 'accept' THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN a.final = 1 THEN a.budget_capped ELSE 0 END)",
    "SUM(CASE WHEN a.final = 1 THEN a.degraded ELSE 0 END)",
    "COALESCE(SUM(a.prompt_tokens), 0)",
    "COALESCE(SUM(a.completion_tokens), 0)",
)
_SHADOW = f"a.decision = '{Decision.SHADOW}'"
RAW_SHADOW_COUNTS = (
    f"SUM(CASE WHEN {_SHADOW} THEN 1 ELSE 0 END)",
    f"COALESCE(SUM(CASE WHEN {_SHADOW} THEN a.cost_ticks END), 0)",
    f"SUM(CASE WHEN {_SHADOW} AND a.cost_ticks IS NULL THEN 1 ELSE 0 END)",
)
RAW_COUNTS = (*RAW_COUNTS_V1, *RAW_SHADOW_COUNTS)
# The router stores every selected skill, best first, comma-joined; reports key on the first.
TOP_SKILL = {
    "sqlite": "CASE WHEN instr(a.skill, ',') > 0 "
    "THEN substr(a.skill, 1, instr(a.skill, ',') - 1) ELSE a.skill END",
    "postgresql": "NULLIF(split_part(a.skill, ',', 1), '')",
}


def raw_keys(dialect: str) -> tuple[str, ...]:
    """The rollup key expressions over raw attempt rows (alias ``a``), in ROLLUP_KEYS order."""
    return (
        "SUBSTR(a.ts, 1, 10)",
        f"COALESCE(a.team, '{NONE}')",
        f"COALESCE({TOP_SKILL[dialect]}, '{NONE}')",
        "a.tier",
        "a.model",
        f"COALESCE(a.data_class, '{NONE}')",
    )


def top_skill(skill: str | None) -> str:
    """The rollup's skill key: the first (best) of the comma-joined skills, or ``(none)``."""
    return skill.split(",", 1)[0] or NONE if skill else NONE


# Latency rounded to 2 significant digits (SQL ROUND rounds half away from zero, as below).
_LAT = "CAST(a.latency_s AS NUMERIC)"  # PostgreSQL has ROUND(numeric, int) only
RAW_BUCKET = (
    f"CASE WHEN a.latency_s < 0.01 THEN ROUND({_LAT}, 4) "
    f"WHEN a.latency_s < 0.1 THEN ROUND({_LAT}, 3) "
    f"WHEN a.latency_s < 1 THEN ROUND({_LAT}, 2) "
    f"WHEN a.latency_s < 10 THEN ROUND({_LAT}, 1) "
    f"WHEN a.latency_s < 100 THEN ROUND({_LAT}, 0) "
    f"ELSE ROUND({_LAT}, -1) END"
)


_BUCKET_PLACES = ((0.01, 4), (0.1, 3), (1.0, 2), (10.0, 1), (100.0, 0))


def bucket_s(latency_s: float) -> float:
    """The latency histogram bucket: ``latency_s`` to 2 significant digits (as RAW_BUCKET;
    the two may differ by one step on an exact half, which percentiles can bear)."""
    for bound, places in _BUCKET_PLACES:
        if latency_s < bound:
            return round(latency_s, places)
    return round(latency_s, -1)


def _upsert(table: str, keys: Sequence[str], counts: Sequence[str]) -> str:
    columns = [*keys, *counts]
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


UPSERTS = {
    "rollup": _upsert("rollup_daily", ROLLUP_KEYS, ROLLUP_COUNTS),
    "latency": _upsert("latency_daily", ("day", "tier", "model", "bucket_s"), ("n",)),
    "verdicts": _upsert("verdicts_daily", ("day", "verifier"), ("n", "passed")),
    "reasons": _upsert("reasons_daily", ("day", "reason"), ("n",)),
}


def rollup_params(
    entries: Sequence[CallRecord], rows: Sequence[Sequence[Any]]
) -> dict[str, list[tuple[Any, ...]]]:  # Any: DB-API parameter tuples
    """The upsert parameters for a batch; ``rows[i]`` is ``record_to_row(entries[i])`` (its
    tick and text values are reused, not recomputed)."""
    rollup: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * len(ROLLUP_COUNTS))
    latency: dict[tuple[str, str, str, float], int] = defaultdict(int)
    verdicts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[tuple[str, str], int] = defaultdict(int)
    for entry, row in zip(entries, rows, strict=True):
        day = row[3][:10]
        key = (
            day,
            entry.team or NONE,
            top_skill(entry.skill),
            entry.tier,
            entry.model,
            entry.data_class or NONE,
        )
        cost, final = row[16], entry.final
        cf = row[17] if final else None
        acc = rollup[key]
        acc[0] += 1
        acc[3] += cost or 0
        acc[4] += cost is None
        acc[10] += entry.prompt_tokens or 0
        acc[11] += entry.completion_tokens or 0
        if entry.decision is Decision.SHADOW:
            acc[12] += 1
            acc[13] += cost or 0
            acc[14] += cost is None
        if final:
            acc[1] += 1
            acc[2] += entry.attempt_index > 0
            acc[5] += cf or 0
            acc[6] += cf is None
            acc[7] += entry.decision is Decision.ACCEPT
            acc[8] += entry.budget_capped
            acc[9] += entry.degraded
        latency[day, entry.tier, entry.model, bucket_s(entry.latency_s)] += 1
        for verdict in entry.verdicts:
            counts = verdicts[day, verdict.verifier]
            counts[0] += 1
            counts[1] += verdict.passed
        if entry.decision is Decision.ESCALATE:
            reasons[day, entry.reason] += 1
    # Sorted by key: concurrent writers (PostgreSQL) then lock rollup rows in one global order,
    # so two batches can never deadlock on each other.
    return {
        "rollup": [(*k, *v) for k, v in sorted(rollup.items())],
        "latency": [(*k, n) for k, n in sorted(latency.items())],
        "verdicts": [(*k, *v) for k, v in sorted(verdicts.items())],
        "reasons": [(*k, n) for k, n in sorted(reasons.items())],
    }


def sqlite_migration() -> str:
    """SQLite schema migration 2: the rollup tables, backfilled from the existing rows."""
    day = "SUBSTR(a.ts, 1, 10)"
    verdict = "json_extract(j.value, '$.verifier')"
    passed = "SUM(CASE WHEN json_extract(j.value, '$.passed') THEN 1 ELSE 0 END)"
    statements = (
        *schema("INTEGER", "REAL"),
        f"INSERT INTO rollup_daily SELECT {', '.join(raw_keys('sqlite'))}, "
        f"{', '.join(RAW_COUNTS_V1)} "
        "FROM attempts a GROUP BY 1, 2, 3, 4, 5, 6",
        f"INSERT INTO latency_daily SELECT {day}, a.tier, a.model, {RAW_BUCKET}, COUNT(*) "
        "FROM attempts a GROUP BY 1, 2, 3, 4",
        f"INSERT INTO verdicts_daily SELECT {day}, {verdict}, COUNT(*), {passed} "
        "FROM attempts a, json_each(a.verdicts) j GROUP BY 1, 2",
        f"INSERT INTO reasons_daily SELECT {day}, a.reason, COUNT(*) FROM attempts a "
        "WHERE a.decision = 'escalate' GROUP BY 1, 2",
    )
    return ";\n".join(statements)


def shadow_migration(dialect: str, big: str) -> str:
    """The migration adding ``SHADOW_COUNTS`` to ``rollup_daily`` (SQLite 5, PostgreSQL 3),
    backfilled from the shadow rows already recorded (their keys all have a rollup row).
    Released: a column added later needs a migration of its own, as this one is."""
    keys = raw_keys(dialect)
    match = " AND ".join(f"rollup_daily.{k} = s.{k}" for k in ROLLUP_KEYS)
    return ";\n".join(
        (
            *(
                f"ALTER TABLE rollup_daily ADD COLUMN {c} {big} NOT NULL DEFAULT 0"
                for c in SHADOW_COUNTS
            ),
            f"UPDATE rollup_daily SET {', '.join(f'{c} = s.{c}' for c in SHADOW_COUNTS)} FROM ("
            f"SELECT {', '.join(f'{e} AS {k}' for e, k in zip(keys, ROLLUP_KEYS, strict=True))}, "
            + ", ".join(
                f"{e} AS {c}" for e, c in zip(RAW_SHADOW_COUNTS, SHADOW_COUNTS, strict=True)
            )
            + f" FROM attempts a WHERE {_SHADOW} GROUP BY 1, 2, 3, 4, 5, 6) s WHERE {match}",
        )
    )
