"""Daily rollups written beside the attempt rows, so reports over millions of rows stay fast.

``record_many`` (and the buffered writer behind ``record``) aggregates each batch in Python (one
upsert per distinct key, not per row) and upserts, in the same transaction as the rows:

* ``rollup_dims``: the report's counts (``DIM_COUNTS``) per (dimension, day, key), one dimension
  at a time: ``team``, ``skill`` (the top skill), ``tier``, ``model``, ``data_class``, ``task``,
  ``tool`` (one row per distinct tool an attempt called: an attempt that called two tools counts
  in both) and ``tag:<key>`` (one per tag the attempt carries). Keyed by one dimension each, a
  breakdown is one index range scan over (dim, key, day), already in key order.
  Missing team, skill, data_class, task and tool are stored as ``(none)``; a missing tag is not
  stored (the report derives its ``(none)`` group from the totals);
* ``latency_daily``: a latency histogram per (day, tier, model), buckets of 2 significant digits;
* ``verdicts_daily``: verdicts and passes per (day, verifier);
* ``reasons_daily``: escalation reasons per (day, reason).

``rollup_daily`` (one row per day x team x skill x tier x model x data_class) was the first
design; SQLite migration 6 / PostgreSQL 4 replace it with ``rollup_dims``, backfilled from the
rows. Its definitions stay here because the released migrations that created it still run on old
ledgers.

Days are UTC dates (the first 10 characters of the ledger's timestamp text). Used by the SQLite
and PostgreSQL ledgers; SQL uses ``?`` placeholders.
"""

from __future__ import annotations

import json
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


# --- rollup_dims ------------------------------------------------------------------------------

# The counts of rollup_dims: rollup_daily's, then the token details of newer CallRecords.
TOKEN_COUNTS = ("cached_prompt_tokens", "reasoning_tokens")
DIM_COUNTS = (*ROLLUP_COUNTS, *TOKEN_COUNTS)
RAW_DIM_COUNTS = (
    *RAW_COUNTS,
    "COALESCE(SUM(a.cached_prompt_tokens), 0)",
    "COALESCE(SUM(a.reasoning_tokens), 0)",
)
# Dimensions with exactly one key per attempt, in rollup_dims; ``tool`` and ``tag:<key>`` are
# there too (see the module docstring); ``day`` is read from the ``tier`` rows.
KEYED_DIMS = ("team", "skill", "tier", "model", "data_class", "task")
TOOL = "tool"
TAG_PREFIX = "tag:"
# Every attempt has exactly one tier: totals and days are read from these rows.
TOTAL_DIM = "tier"


def dims_schema(big: str, *, sqlite: bool) -> str:
    """CREATE TABLE rollup_dims; clustered on (dim, key, day) (SQLite: WITHOUT ROWID;
    PostgreSQL: its primary key index), so a breakdown is one index range scan already in key
    order: the sum per key streams, with no sort, however many keys x days there are (half the
    time of (dim, day, key) over a year of 934 skills; a window of a few days reads every day
    of the dimension's index range, still without touching the table)."""
    counts = ", ".join(f"{c} {big} NOT NULL" for c in DIM_COUNTS)
    suffix = " WITHOUT ROWID" if sqlite else ""
    return (
        "CREATE TABLE rollup_dims (day TEXT NOT NULL, dim TEXT NOT NULL, key TEXT NOT NULL, "
        f"{counts}, PRIMARY KEY (dim, key, day)){suffix}"
    )


def raw_dim_keys(dialect: str) -> dict[str, str]:
    """The key expression of each KEYED_DIMS dimension (and ``day``) over raw attempt rows
    (alias ``a``), as record_many computes them."""
    return {
        "day": "SUBSTR(a.ts, 1, 10)",
        "team": f"COALESCE(a.team, '{NONE}')",
        "skill": f"COALESCE({TOP_SKILL[dialect]}, '{NONE}')",
        "tier": "a.tier",
        "model": "a.model",
        "data_class": f"COALESCE(a.data_class, '{NONE}')",
        "task": f"COALESCE(a.task_id, '{NONE}')",
    }


def tool_join(dialect: str) -> tuple[str, str, str]:
    """How to walk the distinct tools of attempt alias ``a`` (``(none)`` when it called none):
    (text to append to the FROM clause, the tool expression, a WHERE condition)."""
    if dialect == "postgresql":
        return (
            " CROSS JOIN LATERAL (SELECT DISTINCT t FROM jsonb_array_elements_text("
            f"""COALESCE(a.tools, '["{NONE}"]'::jsonb)) t) tj""",
            "tj.t",
            "1 = 1",
        )
    return (
        f""", json_each(COALESCE(a.tools, '["{NONE}"]')) tj""",
        "tj.value",
        # the first call of each tool only, so an attempt counts once per tool
        "NOT EXISTS (SELECT 1 FROM json_each(a.tools) tk WHERE tk.value = tj.value "
        "AND tk.key < tj.key)",
    )


def tag_join(dialect: str) -> tuple[str, str, str]:
    """How to walk the tags of attempt alias ``a``: (FROM-clause text, key expr, value expr)."""
    if dialect == "postgresql":
        return " CROSS JOIN LATERAL jsonb_each_text(a.tags) gj", "gj.key", "gj.value"
    return ", json_each(a.tags) gj", "gj.key", "gj.value"


def tag_value(dialect: str) -> str:
    """The expression of one tag's value of attempt alias ``a`` (the key as a ``?`` parameter);
    NULL when the attempt does not carry that tag."""
    if dialect == "postgresql":
        return "(a.tags ->> ?)"
    return "(SELECT gv.value FROM json_each(a.tags) gv WHERE gv.key = ?)"


def _upsert(table: str, keys: Sequence[str], counts: Sequence[str]) -> str:
    columns = [*keys, *counts]
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


UPSERTS = {
    "dims": _upsert("rollup_dims", ("dim", "key", "day"), DIM_COUNTS),
    "latency": _upsert("latency_daily", ("day", "tier", "model", "bucket_s"), ("n",)),
    "verdicts": _upsert("verdicts_daily", ("day", "verifier"), ("n", "passed")),
    "reasons": _upsert("reasons_daily", ("day", "reason"), ("n",)),
}

_ACCEPT, _ESCALATE, _SHADOW_DECISION = Decision.ACCEPT.value, Decision.ESCALATE.value, "shadow"


def rollup_params(
    entries: Sequence[CallRecord], rows: Sequence[Sequence[Any]]
) -> dict[str, list[tuple[Any, ...]]]:  # Any: DB-API parameter tuples
    """The upsert parameters for a batch; ``rows[i]`` is ``record_to_row(entries[i])`` (its
    tick and text values are reused, not recomputed).

    One pass over the rows sums their numbers per (every dimension's key, the row's flags); the
    ``DIM_COUNTS`` of each such group follow from its flags, and each group is then spread over
    the dimensions: per row a few additions, the rest per group (a batch has few).
    """
    # (day, team, skill, tier, model, data_class, task, tools, tags text), then the flags
    # (final, attempt_index > 0, cost unknown, counterfactual unknown, decision, capped,
    # degraded) -> [rows, cost, counterfactual, prompt, completion, cached, reasoning]
    sums: dict[tuple[Any, ...], list[int]] = {}  # Any: text keys and a tools tuple
    latency: dict[tuple[str, str, str, float], int] = defaultdict(int)
    verdict_lists: dict[tuple[str, str], int] = defaultdict(int)
    reasons: dict[tuple[str, str], int] = defaultdict(int)
    for entry, row in zip(entries, rows, strict=True):
        (_, _, index, ts, team, skill, data_class, tier, _, model, decision, reason, final,
         prompt, completion, latency_s, cost, cf, verdict_text, _, _, _, _, degraded,
         capped) = row[:25]  # fmt: skip
        day = ts[:10]
        if skill:
            comma = skill.find(",")
            skill = (skill if comma < 0 else skill[:comma]) or NONE
        key = (
            day, team or NONE, skill or NONE, tier, model, data_class or NONE,
            entry.task_id or NONE, entry.tools, row[30],
            final, index > 0, cost is None, cf is None, decision, capped, degraded,
        )  # fmt: skip
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0, 0, 0, 0, 0, 0, 0]
        acc[0] += 1
        if cost:
            acc[1] += cost
        if cf:
            acc[2] += cf
        if prompt:
            acc[3] += prompt
        if completion:
            acc[4] += completion
        if entry.cached_prompt_tokens:
            acc[5] += entry.cached_prompt_tokens
        if entry.reasoning_tokens:
            acc[6] += entry.reasoning_tokens
        # bucket_s() inlined (the common bounds first): one call less per row
        if 0.1 <= latency_s < 1.0:
            bucket = round(latency_s, 2)
        elif 1.0 <= latency_s < 10.0:
            bucket = round(latency_s, 1)
        else:
            bucket = bucket_s(latency_s)
        latency[day, tier, model, bucket] += 1
        if verdict_text != "[]":
            verdict_lists[day, verdict_text] += 1
        if decision == _ESCALATE:
            reasons[day, reason] += 1
    fine: dict[tuple[Any, ...], list[tuple[int, ...]]] = defaultdict(list)  # Any: as above
    for key, (n, cost, cf, prompt, completion, cached, reasoning) in sums.items():
        final, later, cost_unknown, cf_unknown, decision, capped, degraded = key[9:]
        shadow = decision == _SHADOW_DECISION
        f = n if final else 0
        fine[key[:9]].append(
            (
                n,
                f,
                f if later else 0,
                cost,
                n if cost_unknown else 0,
                cf if final else 0,
                f if cf_unknown else 0,
                f if decision == _ACCEPT else 0,
                f if capped else 0,
                f if degraded else 0,
                prompt,
                completion,
                n if shadow else 0,
                cost if shadow else 0,
                n if shadow and cost_unknown else 0,
                cached,
                reasoning,
            )
        )
    dims: dict[tuple[str, str, str], list[tuple[int, ...]]] = defaultdict(list)
    for (day, *keys, tools, tags), vectors in fine.items():
        total = vectors[0] if len(vectors) == 1 else tuple(map(sum, zip(*vectors, strict=True)))
        for dim, value in zip(KEYED_DIMS, keys, strict=True):
            dims[dim, value, day].append(total)
        for tool in dict.fromkeys(tools) if tools else (NONE,):
            dims[TOOL, tool, day].append(total)
        if tags is not None:
            for name, value in json.loads(tags).items():
                dims[TAG_PREFIX + name, value, day].append(total)
    verdicts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (day, text), n in verdict_lists.items():
        for verdict in json.loads(text):  # once per distinct verdict list of the batch
            counts = verdicts[day, verdict["verifier"]]
            counts[0] += n
            counts[1] += n if verdict["passed"] else 0
    # Sorted by key: concurrent writers (PostgreSQL) then lock rollup rows in one global order,
    # so two batches can never deadlock on each other.
    return {
        "dims": [
            (*k, *(v[0] if len(v) == 1 else map(sum, zip(*v, strict=True))))
            for k, v in sorted(dims.items())
        ],
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


def _dims_backfill(dialect: str, where: str = "1 = 1", on_conflict: str = "") -> list[str]:
    """INSERT statements filling rollup_dims from the attempt rows ``where`` selects.

    The dimensions of few keys are summed from one aggregate of the rows by all of them at once
    (one pass computing the counts, then small groupings); task, tool and tag (many keys, or
    several per row) each read the rows themselves."""
    keys = raw_dim_keys(dialect)
    day = keys["day"]
    counts = ", ".join(RAW_DIM_COUNTS)
    columns = f"(day, dim, key, {', '.join(DIM_COUNTS)})"
    into = f"INSERT INTO rollup_dims {columns} SELECT {day}"
    few = [d for d in KEYED_DIMS if d != "task"]
    sums = ", ".join(f"SUM({c})" for c in DIM_COUNTS)
    fine = ", ".join(f"{keys[d]} AS {d}" for d in few)
    named = ", ".join(
        f"{expression} AS {name}"
        for expression, name in zip(RAW_DIM_COUNTS, DIM_COUNTS, strict=True)
    )
    spread = " UNION ALL ".join(
        f"SELECT day, '{d}', {d}, {sums} FROM f WHERE 1 = 1 GROUP BY day, {d}" for d in few
    )
    statements = [
        f"WITH f AS MATERIALIZED (SELECT {day} AS day, {fine}, {named} FROM attempts a "
        f"WHERE {where} GROUP BY {', '.join(str(i + 1) for i in range(len(few) + 1))}) "
        f"INSERT INTO rollup_dims {columns} SELECT * FROM ({spread}) s WHERE 1 = 1",
        f"{into}, 'task', {keys['task']}, {counts} FROM attempts a WHERE {where} GROUP BY 1, 3",
    ]

    # Tools and tags: the rows grouped by their JSON text first, so each distinct list or
    # mapping is parsed once, not once per row.
    def by_text(column: str) -> str:
        return (
            f"(SELECT {day} AS day, a.{column} AS {column}, {named} FROM attempts a "
            f"WHERE {where} GROUP BY 1, 2) a"
        )

    join, tool, condition = tool_join(dialect)
    statements.append(
        f"INSERT INTO rollup_dims {columns} SELECT a.day, '{TOOL}', {tool}, {sums} "
        f"FROM {by_text('tools')}{join} WHERE {condition} GROUP BY 1, 3"
    )
    join, tag, value = tag_join(dialect)
    statements.append(
        f"INSERT INTO rollup_dims {columns} SELECT a.day, '{TAG_PREFIX}' || {tag}, {value}, "
        f"{sums} FROM {by_text('tags')}{join} WHERE 1 = 1 GROUP BY 1, 2, 3"
    )
    return [f"{sql}{on_conflict}" for sql in statements]


def dims_migration(dialect: str, big: str) -> str:
    """The migration replacing ``rollup_daily`` with ``rollup_dims`` (SQLite 6, PostgreSQL 4),
    backfilled from the rows (run after the attempt columns it reads were added)."""
    statements = [dims_schema(big, sqlite=dialect == "sqlite"), *_dims_backfill(dialect)]
    statements.append("DROP TABLE rollup_daily")
    return ";\n".join(statements)


# (the verifier of verdict j, 1 when j passed else 0, the walk over the verdicts of alias g)
_RAW_VERDICT_ROWS = {
    "sqlite": (
        "json_extract(j.value, '$.verifier')",
        "CASE WHEN json_extract(j.value, '$.passed') THEN 1 ELSE 0 END",
        ", json_each(g.verdicts) j",
    ),
    "postgresql": (
        "j ->> 'verifier'",
        "CASE WHEN (j ->> 'passed')::boolean THEN 1 ELSE 0 END",
        ", jsonb_array_elements(g.verdicts) j",
    ),
}


def _fill_statements(dialect: str, where: str, upsert: bool) -> list[str]:
    """Every rollup filled from the attempt rows ``where`` selects; ``upsert`` adds to rows
    already there instead of expecting none."""

    def conflict(table: str, keys: Sequence[str], counts: Sequence[str]) -> str:
        if not upsert:
            return ""
        updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
        return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"

    day = "SUBSTR(a.ts, 1, 10)"
    verifier, passed, walk = _RAW_VERDICT_ROWS[dialect]
    return [
        *_dims_backfill(dialect, where, conflict("rollup_dims", ("dim", "key", "day"), DIM_COUNTS)),
        f"INSERT INTO latency_daily SELECT {day}, a.tier, a.model, {RAW_BUCKET}, COUNT(*) "
        f"FROM attempts a WHERE {where} GROUP BY 1, 2, 3, 4"
        + conflict("latency_daily", ("day", "tier", "model", "bucket_s"), ("n",)),
        # each distinct verdict list parsed once, weighted by the rows that carry it
        f"INSERT INTO verdicts_daily SELECT g.day, {verifier}, SUM(g.n), SUM(g.n * {passed}) "
        f"FROM (SELECT {day} AS day, a.verdicts AS verdicts, COUNT(*) AS n FROM attempts a "
        f"WHERE {where} GROUP BY 1, 2) g{walk} WHERE 1 = 1 GROUP BY 1, 2"
        + conflict("verdicts_daily", ("day", "verifier"), ("n", "passed")),
        f"INSERT INTO reasons_daily SELECT {day}, a.reason, COUNT(*) FROM attempts a "
        f"WHERE {where} AND a.decision = 'escalate' GROUP BY 1, 2"
        + conflict("reasons_daily", ("day", "reason"), ("n",)),
    ]


def rebuild_statements(dialect: str) -> tuple[str, ...]:
    """Statements that recompute every rollup of the current schema from the attempt rows, in
    one transaction with them: to repair rollups, or after a bulk load."""
    tables = ("rollup_dims", "latency_daily", "verdicts_daily", "reasons_daily")
    return (
        *(f"DELETE FROM {table}" for table in tables),
        *_fill_statements(dialect, "1 = 1", upsert=False),
    )


def add_rows_statements(dialect: str) -> tuple[str, ...]:
    """Statements that add the attempt rows with ``? < id <= ?`` (each statement takes those two
    parameters) to every rollup: a bulk load in chunks keeps its rollups as it goes, each
    statement sorting one chunk rather than the whole table."""
    return tuple(_fill_statements(dialect, "a.id > ? AND a.id <= ?", upsert=True))
