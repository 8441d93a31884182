"""The one SQL statement behind ``cost_report.build``, for SQLite and PostgreSQL.

Whole UTC days come from the daily rollups (``ledger/rollup.py``): ``rollup_dims`` keyed by one
dimension at a time, so each breakdown is one index range scan in key order. The attempt rows the
rollups cannot answer for (the partial days at the window's edges, each an index range on ``ts``;
or, with a ``where`` filter, the whole window) are read **once**, summed by every key any figure
needs into a materialised CTE ``r``; every figure (breakdowns, latency histogram, reasons,
verdicts) is derived from it. Labels are
joined to their routes' final attempts once (CTE ``lab``). One statement, one round trip.

Result rows, by ``kind`` (columns: kind, k1, k2, x, v1 .. v17):

* ``g:<label>``: counts (v1.. in ``rollup.DIM_COUNTS`` order) of group (k1, k2); labels ``all``,
  ``day_tier`` (k1 day, k2 tier), ``day`` and each requested dimension;
* ``h:<dim>``: latency histogram of key k1: bucket x, count v1 (``all``, ``tier``, ``model``,
  ``day``);
* ``r``: escalation reason k1, count v1; ``v``: verifier k1, verdicts v1, passed v2;
* ``l:<dim>``: labels of key k1: v1 COUNT(correct), v2 SUM(correct), v3 COUNT(score), x SUM(score).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ConfigError
from paxis_router.ledger import rollup
from paxis_router.ledger.schema import format_ts

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

Params = list[Any]  # Any: DB-API parameters
COUNTS = rollup.DIM_COUNTS
LATENCY_DIMS = ("tier", "model", "day")
# The keys of one row group of ``r`` (the fine aggregate ``e``): every dimension at once.
FINE = ("day", "team", "skill", "tier", "model", "data_class", "task", "tools", "tags")
_V = ", ".join(f"v{i + 1}" for i in range(len(COUNTS)))


@dataclass(frozen=True)
class Window:
    """Which whole days come from the rollups and which attempt rows are read.

    ``ranges`` are conditions over attempt alias ``a``, one per partial day (each an index range
    on ``ts``), already holding the ``where`` filter; ``rows_clause`` is the whole window's
    (labels are joined to attempts over it).
    """

    day_clause: str | None  # None: no whole day read from the rollups
    day_params: tuple[str, ...]
    ranges: tuple[tuple[str, tuple[Any, ...]], ...]  # Any: DB-API parameters
    rows_clause: str
    rows_params: tuple[Any, ...]  # Any: DB-API parameters

    @classmethod
    def of(
        cls, since: datetime | None, until: datetime | None, where: tuple[str, Params] | None
    ) -> Window:
        bounds: list[str] = []
        bound_params: list[str] = []
        if since is not None:
            bounds.append("a.ts >= ?")
            bound_params.append(format_ts(since))
        if until is not None:
            bounds.append("a.ts < ?")
            bound_params.append(format_ts(until))
        filter_sql, filter_params = where or ("", [])
        rows_clause = " AND ".join([*bounds, *([filter_sql] if filter_sql else [])]) or "1 = 1"
        rows_params = (*bound_params, *filter_params)
        if where is not None:  # a filtered report reads the rows of the whole window
            return cls(None, (), ((rows_clause, rows_params),), rows_clause, rows_params)
        lo_day = None if since is None else _day_after_or_at(since)
        hi_day = None if until is None else until.astimezone(UTC).date()
        edges: list[tuple[datetime, datetime]] = []
        if lo_day is not None and hi_day is not None and lo_day > hi_day:
            assert since is not None and until is not None
            edges.append((since, until))
            day_clause: str | None = None
            day_params: tuple[str, ...] = ()
        else:
            clauses, params = ["1 = 1"], []
            if lo_day is not None:
                clauses.append("day >= ?")
                params.append(lo_day.isoformat())
                if since is not None and _midnight(lo_day) != since:
                    edges.append((since, _midnight(lo_day)))
            if hi_day is not None:
                clauses.append("day < ?")
                params.append(hi_day.isoformat())
                if until is not None and _midnight(hi_day) != until:
                    edges.append((_midnight(hi_day), until))
            day_clause, day_params = " AND ".join(clauses), tuple(params)
        ranges = tuple(
            ("a.ts >= ? AND a.ts < ?", (format_ts(lo), format_ts(hi))) for lo, hi in edges
        )
        return cls(day_clause, day_params, ranges, rows_clause, rows_params)


def _day_after_or_at(ts: datetime) -> date:
    day = ts.astimezone(UTC).date()
    return day if _midnight(day) == ts else day + timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- expressions ------------------------------------------------------------------------------


def _flag(dialect: str, condition: str) -> str:
    """``condition`` as 0/1 (SQLite comparisons are integers already)."""
    return f"({condition})::int" if dialect == "postgresql" else f"({condition})"


def _row_counts(dialect: str) -> tuple[str, ...]:
    """Each attempt's contribution to ``COUNTS`` (alias ``a``), summed per group later; the
    same figures as ``rollup.RAW_DIM_COUNTS`` and ``rollup.rollup_params``."""
    f = _flag
    final = "a.final"
    shadow = f(dialect, "a.decision = 'shadow'")
    accepted = f(dialect, "a.decision = 'accept'")
    return (
        "1",
        final,
        f"{final} * {f(dialect, 'a.attempt_index > 0')}",
        "COALESCE(a.cost_ticks, 0)",
        f(dialect, "a.cost_ticks IS NULL"),
        f"{final} * COALESCE(a.counterfactual_ticks, 0)",
        f"{final} * {f(dialect, 'a.counterfactual_ticks IS NULL')}",
        f"{final} * {accepted}",
        f"{final} * a.budget_capped",
        f"{final} * a.degraded",
        "COALESCE(a.prompt_tokens, 0)",
        "COALESCE(a.completion_tokens, 0)",
        shadow,
        f"{shadow} * COALESCE(a.cost_ticks, 0)",
        f"{shadow} * {f(dialect, 'a.cost_ticks IS NULL')}",
        "COALESCE(a.cached_prompt_tokens, 0)",
        "COALESCE(a.reasoning_tokens, 0)",
    )


def tag_path(dialect: str, key: str) -> str:
    """The parameter ``tag_value`` takes for tag ``key``."""
    return key if dialect == "postgresql" else f'$."{key}"'


def tag_value(dialect: str) -> str:
    """One tag's value of attempt alias ``a`` (``tag_path`` as a ``?`` parameter); NULL when the
    attempt has no such tag."""
    return "(a.tags ->> ?)" if dialect == "postgresql" else "json_extract(a.tags, ?)"


def where_sql(dialect: str, filters: Mapping[str, str]) -> tuple[str, Params]:
    """The condition over attempt alias ``a`` that keeps the attempts ``filters`` describe."""
    keys = rollup.raw_dim_keys(dialect)
    clauses: list[str] = []
    params: Params = []
    for dim, value in filters.items():
        if dim in keys:
            clauses.append(f"{keys[dim]} = ?")
            params.append(value)
        elif dim == rollup.TOOL and value == rollup.NONE:
            clauses.append("a.tools IS NULL")
        elif dim == rollup.TOOL:
            clauses.append(
                "a.tools @> jsonb_build_array(?::text)"
                if dialect == "postgresql"
                else "EXISTS (SELECT 1 FROM json_each(a.tools) w WHERE w.value = ?)"
            )
            params.append(value)
        else:  # tag:<key>
            path = tag_path(dialect, dim.removeprefix(rollup.TAG_PREFIX))
            if value == rollup.NONE:
                clauses.append(f"{tag_value(dialect)} IS NULL")
                params.append(path)
            else:
                clauses.append(f"{tag_value(dialect)} = ?")
                params += [path, value]
    return " AND ".join(clauses), params


def check_tag(name: str) -> None:
    """Tag keys are named inside a JSON path: refuse a double quote (ConfigError)."""
    if '"' in name:
        raise ConfigError(f"tag key {name!r}: a tag key cannot contain a double quote")


# --- the statement ----------------------------------------------------------------------------


_NO_TEXT = "CAST(NULL AS TEXT)"
_NO_REAL = "CAST(NULL AS DOUBLE PRECISION)"  # SQLite reads DOUBLE PRECISION as REAL
_NO_NUMBER = "CAST(NULL AS NUMERIC)"


def _pad(kind: str, k1: str, k2: str = _NO_TEXT, x: str = _NO_REAL, *values: str) -> str:
    """The select list of one result row shape: kind, k1, k2, x, v1 .. v17. Missing values are
    typed NULLs, so PostgreSQL can match the UNION's column types arm by arm."""
    padded = [*values, *[_NO_NUMBER] * (len(COUNTS) - len(values))]
    return f"'{kind}', {k1}, {k2}, {x}, {', '.join(padded)}"


def _needed(dims: Sequence[str]) -> list[str]:
    """The ``FINE`` keys the breakdowns ``dims`` group by (in ``FINE`` order)."""
    need: set[str] = set()
    for dim in dims:
        if dim == rollup.TOOL:
            need.add("tools")
        elif dim.startswith(rollup.TAG_PREFIX):
            need.add("tags")
        else:
            need.add(dim)
    return [k for k in FINE if k in need]


def report_sql(dialect: str, window: Window, dims: Sequence[str]) -> tuple[str, Params]:
    """The statement and its parameters (``?`` placeholders) for ``dims`` over ``window``."""
    keys = rollup.raw_dim_keys(dialect)

    def column(key: str) -> str:
        return f"{keys[key]} AS {key}" if key in keys else f"a.{key} AS {key}"

    ctes: list[str] = []
    params: Params = []
    if window.ranges:
        # Only the keys this report groups by: a fine key of every dimension would make each
        # row a group of its own (tasks, tags), and every breakdown re-sort them all.
        fine = list(dict.fromkeys(["day", "tier", *_needed(dims)]))
        raw_keys = list(dict.fromkeys([*fine, "model"]))
        columns = [column(k) for k in raw_keys]
        columns += [
            f"{rollup.RAW_BUCKET} AS bucket",
            "a.verdicts AS verdicts",
            "CASE WHEN a.decision = 'escalate' THEN a.reason END AS escalation",
        ]
        positions = ", ".join(str(i + 1) for i in range(len(columns)))
        columns += [f"SUM({e}) AS {c}" for e, c in zip(_row_counts(dialect), COUNTS, strict=True)]
        # The rows summed by every key any figure needs, in one pass (one sort) per range:
        # the breakdowns, the latency histogram, reasons and verdicts all read this.
        select = f"SELECT {', '.join(columns)} FROM attempts a WHERE "
        ctes.append(
            "r AS MATERIALIZED ("
            + " UNION ALL ".join(
                f"{select}{clause} GROUP BY {positions}" for clause, _ in window.ranges
            )
            + ")"
        )
        params += [p for _, range_params in window.ranges for p in range_params]
        group = ", ".join(fine)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in COUNTS)
        ctes.append(f"e AS MATERIALIZED (SELECT {group}, {sums} FROM r GROUP BY {group})")
        ctes.append(
            "h AS MATERIALIZED (SELECT day, tier, model, bucket, SUM(attempts) AS n FROM r "
            "GROUP BY day, tier, model, bucket)"
        )
    label_keys = _needed(dims)
    label_group = f" GROUP BY {', '.join(label_keys)}" if label_keys else ""
    ctes.append(
        "lab AS MATERIALIZED (SELECT "
        + "".join(f"{column(k)}, " for k in label_keys)
        + "COUNT(l.correct) AS nc, SUM(l.correct) AS nt, COUNT(l.score) AS ns, "
        # CROSS JOIN makes SQLite drive the join from the (small) labels table.
        "SUM(l.score) AS ss FROM labels l CROSS JOIN attempts a WHERE a.route_id = l.route_id "
        f"AND a.final = 1 AND {window.rows_clause}{label_group})"
    )
    params += window.rows_params
    arms: list[str] = []
    for sql, arm_params in (
        *_group_arms(dialect, window, dims),
        *_latency_arms(window, dims),
        _reason_arm(window),
        _verdict_arm(dialect, window),
        *_label_arms(dialect, dims),
    ):
        arms.append(sql)
        params += arm_params
    return f"WITH {', '.join(ctes)} {' UNION ALL '.join(arms)}", params


def _union(window: Window, rollup_sql: str, rollup_params: Params, raw_sql: str) -> str | None:
    """``rollup_sql`` (ending in WHERE; the day clause is appended) UNION ALL ``raw_sql`` (over
    ``r`` or ``e``), each only where the window has such a part; None when neither."""
    parts = []
    if window.day_clause is not None:
        parts.append(f"{rollup_sql} {window.day_clause}")
        rollup_params.extend(window.day_params)
    if window.ranges:
        parts.append(raw_sql)
    return " UNION ALL ".join(parts) or None


def _group_arms(dialect: str, window: Window, dims: Sequence[str]) -> list[tuple[str, Params]]:
    keys = rollup.raw_dim_keys(dialect)
    plain = ", ".join(COUNTS)
    # (label, rollup dim, rollup keys, edge keys, edge FROM tail, edge WHERE, edge parameters)
    Spec = tuple[str, str, tuple[str, ...], tuple[str, ...], str, str, Params]
    specs: list[Spec] = [
        ("all", rollup.TOTAL_DIM, ("'all'",), ("'all'",), "", "1 = 1", []),
        ("day_tier", rollup.TOTAL_DIM, ("day", "key"), ("a.day", "a.tier"), "", "1 = 1", []),
    ]
    for dim in dims:
        if dim == "day":
            specs.append(("day", rollup.TOTAL_DIM, ("day",), ("a.day",), "", "1 = 1", []))
        elif dim in keys:
            specs.append((dim, dim, ("key",), (f"a.{dim}",), "", "1 = 1", []))
        elif dim == rollup.TOOL:
            join, tool, condition = rollup.tool_join(dialect)
            specs.append((dim, dim, ("key",), (tool,), join, condition, []))
        else:
            tag, path = tag_value(dialect), tag_path(dialect, dim.removeprefix(rollup.TAG_PREFIX))
            specs.append((dim, dim, ("key",), (tag,), "", f"{tag} IS NOT NULL", [path, path]))
    arms: list[tuple[str, Params]] = []
    for label, rollup_dim, rollup_keys, edge_keys, tail, condition, edge_params in specs:
        two = len(rollup_keys) == 2
        rollup_params: Params = [rollup_dim]
        source = _union(
            window,
            f"SELECT {_k(rollup_keys)}, {plain} FROM rollup_dims WHERE dim = ? AND",
            rollup_params,
            f"SELECT {_k(edge_keys)}, {', '.join(f'a.{c}' for c in COUNTS)} "
            f"FROM e a{tail} WHERE {condition}",
        )
        if source is None:
            continue
        sums = [f"SUM({c})" for c in COUNTS]
        select = _pad(f"g:{label}", "k1", "k2" if two else _NO_TEXT, _NO_REAL, *sums)
        arm_params = rollup_params if window.day_clause is not None else []
        if window.ranges:
            arm_params = [*arm_params, *edge_params]
        group = "k1, k2" if two else "k1"
        arms.append((f"SELECT {select} FROM ({source}) s GROUP BY {group}", arm_params))
    return arms


def _k(keys: tuple[str, ...]) -> str:
    """``("day", "key")`` -> ``"day AS k1, key AS k2"``."""
    return ", ".join(f"{p} AS k{i + 1}" for i, p in enumerate(keys))


def _latency_arms(window: Window, dims: Sequence[str]) -> list[tuple[str, Params]]:
    arms: list[tuple[str, Params]] = []
    for dim in ("all", *sorted({d for d in dims if d in LATENCY_DIMS})):
        key = "'all'" if dim == "all" else dim
        rollup_params: Params = []
        source = _union(
            window,
            f"SELECT {key} AS k1, bucket_s AS b, n FROM latency_daily WHERE",
            rollup_params,
            f"SELECT {key} AS k1, bucket AS b, n FROM h",
        )
        if source is not None:
            select = _pad(f"h:{dim}", "k1", _NO_TEXT, "b", "SUM(n)")
            arms.append((f"SELECT {select} FROM ({source}) s GROUP BY k1, b", rollup_params))
    return arms


def _reason_arm(window: Window) -> tuple[str, Params]:
    rollup_params: Params = []
    source = _union(
        window,
        "SELECT reason AS k1, n FROM reasons_daily WHERE",
        rollup_params,
        "SELECT escalation AS k1, SUM(attempts) AS n FROM r WHERE escalation IS NOT NULL "
        "GROUP BY 1",
    )
    source = source or "SELECT reason AS k1, n FROM reasons_daily WHERE 1 = 0"
    select = _pad("r", "k1", _NO_TEXT, _NO_REAL, "SUM(n)")
    return f"SELECT {select} FROM ({source}) s GROUP BY k1", rollup_params


def _verdict_arm(dialect: str, window: Window) -> tuple[str, Params]:
    if dialect == "postgresql":
        walk = "jsonb_array_elements(g.verdicts) j"
        verifier = "j ->> 'verifier'"
        passed = "CASE WHEN (j ->> 'passed')::boolean THEN 1 ELSE 0 END"
    else:
        walk = "json_each(g.verdicts) j"
        verifier = "json_extract(j.value, '$.verifier')"
        passed = "CASE WHEN json_extract(j.value, '$.passed') THEN 1 ELSE 0 END"
    rollup_params: Params = []
    source = _union(
        window,
        "SELECT verifier AS k1, n, passed FROM verdicts_daily WHERE",
        rollup_params,
        # one JSON walk per distinct verdict list, weighted by how many rows carry it
        f"SELECT {verifier} AS k1, SUM(g.n) AS n, SUM(g.n * {passed}) AS passed FROM "
        f"(SELECT verdicts, SUM(attempts) AS n FROM r GROUP BY verdicts) g, {walk} GROUP BY 1",
    )
    source = source or "SELECT verifier AS k1, n, passed FROM verdicts_daily WHERE 1 = 0"
    select = _pad("v", "k1", _NO_TEXT, _NO_REAL, "SUM(n)", "SUM(passed)")
    return f"SELECT {select} FROM ({source}) s GROUP BY k1", rollup_params


def _label_arms(dialect: str, dims: Sequence[str]) -> list[tuple[str, Params]]:
    keys = rollup.raw_dim_keys(dialect)
    figures = ("SUM(a.nc)", "SUM(a.nt)", "SUM(a.ns)")
    score = "SUM(a.ss)"
    everything = _pad("l:all", "'all'", _NO_TEXT, score, *figures)
    arms: list[tuple[str, Params]] = [(f"SELECT {everything} FROM lab a", [])]
    for dim in dims:
        if dim in keys:
            select = _pad(f"l:{dim}", f"a.{dim}", _NO_TEXT, score, *figures)
            arms.append((f"SELECT {select} FROM lab a GROUP BY a.{dim}", []))
        elif dim == rollup.TOOL:
            join, tool, condition = rollup.tool_join(dialect)
            select = _pad(f"l:{dim}", tool, _NO_TEXT, score, *figures)
            arms.append((f"SELECT {select} FROM lab a{join} WHERE {condition} GROUP BY {tool}", []))
        else:
            path = tag_path(dialect, dim.removeprefix(rollup.TAG_PREFIX))
            key = f"COALESCE({tag_value(dialect)}, '{rollup.NONE}')"
            select = _pad(f"l:{dim}", key, _NO_TEXT, score, *figures)
            arms.append((f"SELECT {select} FROM lab a GROUP BY 2", [path]))
    return arms
