"""Ledger -> CostReport, aggregated by SQL inside the database (never row by row in Python).

The same SQL runs on SQLite and PostgreSQL (only the JSON walk over verdicts differs). Whole
UTC days are read from the daily rollups that ``record_many`` keeps (``ledger/rollup.py``), the
partial days at the window's edges from the attempt rows, so a report over millions of rows
takes milliseconds. Money comes back as exact integer tick sums and becomes ``Decimal``. Rows
whose price is unknown are counted (``unknown_cost_attempts``, ``unknown_counterfactual_routes``)
and left out of the sums — never summed as 0 — and ``prices_complete`` is False when any exist.

Definitions (every figure is over ``[since, until)`` on the attempt's start time):

* ``routes``: routes that ended (rows with ``final``); ``attempts``: every row.
* ``escalation_rate``: routes with more than one attempt / routes.
* ``total_cost_usd``: the sum of known attempt costs; ``counterfactual_cost_usd``: the sum, over
  ended routes, of what the answered tokens would have cost on the ladder's top tier.
* ``savings_usd`` = counterfactual - total; ``savings_ratio`` = counterfactual / total
  ("saved 11.4×"); None when the total is 0.
* ``shadow_cost_usd``, ``shadow_attempts``, ``shadow_unknown_cost_attempts``: of which shadow
  calls (calibration sampling, decision ``shadow``): their known spend (included in
  ``total_cost_usd``, so in the savings too), how many, how many of them had no known price.
* ``latency_p50_s`` / ``latency_p95_s``: nearest-rank percentiles of attempt latency over a
  histogram of 2 significant digits; for the totals and by tier, model and day (None by team,
  skill and data_class, which the latency histogram does not key on).
* ``accuracy``: correct / labelled routes (labels from ``ledger.label`` or ``paxis label``);
  ``mean_score``: the mean labelled score.

Breakdowns group attempts by ``team``, ``skill`` (the route's top skill: the first of those
the router selected), ``tier``, ``model``, ``day`` or ``data_class``;
route figures (routes, escalations, counterfactual, labels) are counted on each route's final
attempt, so by ``tier`` they land on the tier that ended the route.

Example:
    >>> import tempfile, pathlib
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> report = build(SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "l.db"), by=("team",))
    >>> report.routes, report.total_cost_usd, report.breakdowns["team"]
    (0, Decimal('0'), [])
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from paxis_router.errors import ConfigError
from paxis_router.ledger import rollup
from paxis_router.ledger.schema import format_ts, ticks_to_usd

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.table import Table

DIMENSIONS: tuple[str, ...] = (
    "team",
    "skill",
    "tier",
    "model",
    "day",
    "data_class",
    "task",
    "tool",
)  # and tag:<key> for any tag key
DEFAULT_BY: tuple[str, ...] = ("team", "skill", "tier", "model", "day")
TOP_REASONS = 5
# Money in JSON: a plain decimal string ("0.0000004", never "4E-7"), exact.
Usd = Annotated[
    Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json")
]


class LedgerSource(Protocol):
    """What a report reads: a ledger that runs read-only SQL (``?`` placeholders).

    ``dialect`` is ``"sqlite"`` or ``"postgresql"``. ``SQLiteLedger`` and ``PostgresLedger`` fit.
    """

    dialect: str

    def query(
        self, sql: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]: ...  # Any: DB-API


class GroupStats(BaseModel):
    """The figures of one breakdown row (``key`` is the team, skill, tier, model or day)."""

    model_config = ConfigDict(frozen=True)

    key: str
    routes: int
    attempts: int
    escalated_routes: int
    escalation_rate: float | None
    cost_usd: Usd
    unknown_cost_attempts: int
    counterfactual_cost_usd: Usd
    unknown_counterfactual_routes: int
    savings_usd: Usd
    savings_ratio: float | None
    accepted_routes: int
    budget_capped_routes: int
    degraded_routes: int
    prompt_tokens: int
    completion_tokens: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    labelled_routes: int = 0
    correct_routes: int = 0
    accuracy: float | None = None
    mean_score: float | None = None
    shadow_attempts: int = 0
    shadow_cost_usd: Usd = Decimal(0)
    shadow_unknown_cost_attempts: int = 0
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0


class ReasonCount(BaseModel):
    """How often one escalation reason occurred."""

    model_config = ConfigDict(frozen=True)

    reason: str
    count: int


class VerifierStats(BaseModel):
    """How often one verifier passed the answers it judged."""

    model_config = ConfigDict(frozen=True)

    verifier: str
    verdicts: int
    passed: int
    pass_rate: float | None


class DayTierSpend(BaseModel):
    """Known spend of one tier on one day (the HTML report's spend-over-time chart)."""

    model_config = ConfigDict(frozen=True)

    day: str
    tier: str
    cost_usd: Usd
    attempts: int


class CostReport(BaseModel):
    """What finance reads. JSON keys (money as decimal strings, rates as floats in [0, 1]):

    ``generated_at``, ``since``, ``until``, ``routes``, ``attempts``, ``escalated_routes``,
    ``escalation_rate``, ``total_cost_usd``, ``unknown_cost_attempts``,
    ``counterfactual_cost_usd``, ``unknown_counterfactual_routes``, ``prices_complete``,
    ``savings_usd``, ``savings_ratio``, ``accepted_routes``, ``budget_capped_routes``,
    ``degraded_routes``, ``prompt_tokens``, ``completion_tokens``, ``latency_p50_s``,
    ``latency_p95_s``, ``labelled_routes``, ``correct_routes``, ``accuracy``, ``mean_score``,
    ``shadow_attempts``, ``shadow_cost_usd``, ``shadow_unknown_cost_attempts`` (of which shadow
    calls: calibration sampling), ``top_escalation_reasons`` [{reason, count}], ``verifiers``
    [{verifier, verdicts, passed, pass_rate}], ``breakdowns`` {dimension: [GroupStats...]},
    ``spend_by_day_tier`` [{day, tier, cost_usd, attempts}].

    Example:
        >>> CostReport.model_json_schema()["properties"]["savings_ratio"]["anyOf"][0]["type"]
        'number'
    """

    model_config = ConfigDict(frozen=True)

    generated_at: datetime
    since: datetime | None
    until: datetime | None
    routes: int
    attempts: int
    escalated_routes: int
    escalation_rate: float | None
    total_cost_usd: Usd
    unknown_cost_attempts: int
    counterfactual_cost_usd: Usd
    unknown_counterfactual_routes: int
    prices_complete: bool
    savings_usd: Usd
    savings_ratio: float | None
    accepted_routes: int
    budget_capped_routes: int
    degraded_routes: int
    prompt_tokens: int
    completion_tokens: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    labelled_routes: int
    correct_routes: int
    accuracy: float | None
    mean_score: float | None
    shadow_attempts: int = 0
    shadow_cost_usd: Usd = Decimal(0)
    shadow_unknown_cost_attempts: int = 0
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0
    where: dict[str, str] = Field(default_factory=dict)
    top_escalation_reasons: list[ReasonCount] = Field(default_factory=list)
    verifiers: list[VerifierStats] = Field(default_factory=list)
    breakdowns: dict[str, list[GroupStats]] = Field(default_factory=dict)
    spend_by_day_tier: list[DayTierSpend] = Field(default_factory=list)

    # --- renderers ------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The report as JSON with the documented keys."""
        return self.model_dump_json(indent=2)

    def to_markdown(self) -> str:
        """A Markdown summary plus one table per breakdown."""
        from paxis_router.reports.text import markdown

        return markdown(self)

    def to_csv(self) -> str:
        """One CSV row per breakdown row, plus a ``total`` row (dimension ``all``)."""
        return write_csv(self)

    def to_rich(self) -> list[Table]:
        """rich Tables: the totals first, then one per breakdown (print them with a Console)."""
        from paxis_router.reports.text import rich_tables

        return rich_tables(self)

    def to_html(self) -> str:
        """One self-contained HTML file (inline SVG charts, no external URL)."""
        from paxis_router.reports.html import render_html

        return render_html(self)

    @property
    def totals(self) -> GroupStats:
        """The totals as a breakdown row with key ``all``."""
        fields = set(GroupStats.model_fields) - {"key", "cost_usd"}
        data = {name: getattr(self, name) for name in fields}
        return GroupStats(key="all", cost_usd=self.total_cost_usd, **data)


# --- building ------------------------------------------------------------------------------------
#
# Whole UTC days inside the window are read from the daily rollups that record_many maintains
# (ledger/rollup.py: rollup_dims keyed by one dimension at a time, so each breakdown is a range
# scan over (dim, day)); the partial days at the window's edges are aggregated from the attempt
# rows (one index range scan on ts per edge, aggregated once by every key, then spread over the
# breakdowns). With a ``where`` filter every figure comes from the rows of the window. Either way
# the database does the aggregating.

_DIM_COUNTS = rollup.DIM_COUNTS
_SUMS = ", ".join(f"SUM({c})" for c in _DIM_COUNTS)
_EDGE_COUNTS = ", ".join(f"a.{c} AS {c}" for c in _DIM_COUNTS)
_PLAIN_COUNTS = ", ".join(_DIM_COUNTS)
_LATENCY_DIMS = ("tier", "model", "day")
# The columns of one edge (or filtered) row group: every key, then the counts.
_FINE = ("day", "team", "skill", "tier", "model", "data_class", "task", "tools", "tags")

_RAW_VERDICTS = {
    "sqlite": (
        "SELECT json_extract(j.value, '$.verifier') AS verifier, 1 AS n, "
        "CASE WHEN json_extract(j.value, '$.passed') THEN 1 ELSE 0 END AS passed "
        "FROM attempts a, json_each(a.verdicts) j"
    ),
    "postgresql": (
        "SELECT j ->> 'verifier' AS verifier, 1 AS n, "
        "CASE WHEN (j ->> 'passed')::boolean THEN 1 ELSE 0 END AS passed "
        "FROM attempts a, jsonb_array_elements(a.verdicts) j"
    ),
}

_Params = list[Any]  # Any: DB-API parameters


@dataclass(frozen=True)
class _Window:
    """Which whole days come from the rollups and which row ranges from the attempts.

    ``ranges`` are conditions over attempt alias ``a``, one per partial day (each an index range
    on ``ts``), already holding the ``where`` filter; ``rows`` is the whole window's condition
    (labels are read from rows, joined from the labels table).
    """

    day_clause: str | None  # None: no whole day read from the rollups
    day_params: tuple[str, ...]
    ranges: tuple[tuple[str, tuple[Any, ...]], ...]  # Any: DB-API parameters
    rows_clause: str
    rows_params: tuple[Any, ...]  # Any: DB-API parameters

    @classmethod
    def of(
        cls, since: datetime | None, until: datetime | None, where: tuple[str, _Params] | None
    ) -> _Window:
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

    def rollup(self, sql: str) -> tuple[str, _Params] | None:
        """``sql`` (a rollup SELECT ending in WHERE) over the whole days, or None."""
        if self.day_clause is None:
            return None
        return f"{sql} {self.day_clause}", list(self.day_params)

    def raw(self, sql: str) -> tuple[str, _Params] | None:
        """``sql`` (with ``{where}`` where the condition over ``a`` goes) once per row range,
        UNION ALL, or None when no row is read."""
        if not self.ranges:
            return None
        parts = [sql.format(where=clause) for clause, _ in self.ranges]
        params = [p for _, range_params in self.ranges for p in range_params]
        return " UNION ALL ".join(parts), params

    def union(self, rollup_sql: str, raw_sql: str) -> tuple[str, _Params]:
        """The rollup part UNION ALL the raw part (``SELECT ... WHERE 1 = 0`` when neither)."""
        parts = [p for p in (self.rollup(rollup_sql), self.raw(raw_sql)) if p is not None]
        if not parts:
            return f"{rollup_sql} 1 = 0", []
        return " UNION ALL ".join(p for p, _ in parts), [x for _, ps in parts for x in ps]


def _day_after_or_at(ts: datetime) -> date:
    day = ts.astimezone(UTC).date()
    return day if _midnight(day) == ts else day + timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _valid_dimension(name: str) -> bool:
    return name in DIMENSIONS or (name.startswith(rollup.TAG_PREFIX) and len(name) > 4)


def build(
    ledger: LedgerSource,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Sequence[str] = DEFAULT_BY,
    now: datetime | None = None,
    where: Mapping[str, str] | None = None,
) -> CostReport:
    """Aggregate the ledger over ``[since, until)`` into a CostReport.

    Args:
        ledger: a ``SQLiteLedger`` or ``PostgresLedger`` (anything with ``query`` and ``dialect``).
        since: first instant included (aware); None for the beginning.
        until: first instant excluded (aware); None for no end.
        by: breakdown dimensions, among ``DIMENSIONS`` and ``tag:<key>``.
        now: the report's ``generated_at`` (injectable for tests).
        where: keep only the attempts whose dimension has this key, e.g.
            ``{"tag:project": "apollo"}`` (several: all must hold; ``tool``: the attempt called
            it; ``(none)``: the attempt has none). A filtered report reads the window's rows.

    Raises:
        ConfigError: an unknown dimension, a naive or empty window.
        LedgerError: the database refused a query.
    """
    unknown = [d for d in (*by, *(where or {})) if not _valid_dimension(d)]
    if unknown:
        raise ConfigError(
            f"unknown report dimension(s) {unknown}; expected some of {', '.join(DIMENSIONS)} "
            "or tag:<key>"
        )
    if ledger.dialect not in _RAW_VERDICTS:
        raise ConfigError(f"no report SQL for ledger dialect {ledger.dialect!r}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ConfigError(f"report {name}={value!r} is naive; give an aware UTC datetime")
    if since is not None and until is not None and since >= until:
        raise ConfigError(f"report window is empty: since {since} is not before until {until}")
    dialect = ledger.dialect
    filters = dict(where or {})
    window = _Window.of(since, until, _where_sql(dialect, filters) if filters else None)
    dims = list(dict.fromkeys(by))
    groups, day_tier = _groups(ledger, window, dims)
    _add_latency(ledger, window, groups)
    _add_labels(ledger, window, groups, dims)
    _add_missing_tags(groups, dims)
    stats = {key: _group_stats(key[1], values) for key, values in groups.items()}
    total = stats.get(("all", "all")) or _group_stats("all", {})
    data = total.model_dump(exclude={"key", "cost_usd"})
    return CostReport(
        generated_at=now or datetime.now(UTC),
        since=since,
        until=until,
        where=filters,
        total_cost_usd=total.cost_usd,
        prices_complete=total.unknown_cost_attempts == 0
        and total.unknown_counterfactual_routes == 0,
        top_escalation_reasons=_top_reasons(ledger, window),
        verifiers=_verifier_stats(ledger, window),
        breakdowns={
            dim: sorted((s for (d, _), s in stats.items() if d == dim), key=lambda s: s.key)
            for dim in dims
        },
        spend_by_day_tier=day_tier,
        **data,
    )


def _where_sql(dialect: str, filters: Mapping[str, str]) -> tuple[str, _Params]:
    """The condition over attempt alias ``a`` that keeps the attempts ``filters`` describe."""
    keys = rollup.raw_dim_keys(dialect)
    clauses: list[str] = []
    params: _Params = []
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
            tag = rollup.tag_value(dialect)
            name = dim.removeprefix(rollup.TAG_PREFIX)
            if value == rollup.NONE:
                clauses.append(f"{tag} IS NULL")
                params.append(name)
            else:
                clauses.append(f"{tag} = ?")
                params += [name, value]
    return " AND ".join(clauses), params


_Groups = dict[tuple[str, str], dict[str, Any]]  # Any: figures of mixed types, by name


def _groups(
    ledger: LedgerSource, window: _Window, dims: list[str]
) -> tuple[_Groups, list[DayTierSpend]]:
    """Every breakdown's counts, the totals and the spend by day and tier, in one query."""
    dialect = ledger.dialect
    keys = rollup.raw_dim_keys(dialect)
    edge = window.raw(
        f"SELECT {', '.join(keys[k] if k in keys else f'a.{k}' for k in _FINE)}, "
        f"{', '.join(rollup.RAW_DIM_COUNTS)} FROM attempts a WHERE {{where}} "
        f"GROUP BY {', '.join(str(i + 1) for i in range(len(_FINE)))}"
    )
    # (label, rollup dim, rollup key columns, edge key expressions, edge FROM tail, edge WHERE,
    # parameters of the edge key expressions and WHERE)
    Arm = tuple[str, str, str, str, str, str, _Params]
    arms: list[Arm] = [
        ("all", rollup.TOTAL_DIM, _keys("'all'"), _keys("'all'"), "", "1 = 1", []),
        ("day_tier", rollup.TOTAL_DIM, _keys("day", "key"), _keys("a.day", "a.tier"), "", "1 = 1", []),
    ]
    for dim in dims:
        if dim == "day":
            arms.append(("day", rollup.TOTAL_DIM, _keys("day"), _keys("a.day"), "", "1 = 1", []))
        elif dim in keys:
            arms.append((dim, dim, _keys("key"), _keys(f"a.{dim}"), "", "1 = 1", []))
        elif dim == rollup.TOOL:
            join, tool, condition = rollup.tool_join(dialect)
            arms.append((dim, dim, _keys("key"), _keys(tool), join, condition, []))
        else:
            tag = rollup.tag_value(dialect)
            name = dim.removeprefix(rollup.TAG_PREFIX)
            arms.append((dim, dim, _keys("key"), _keys(tag), "", f"{tag} IS NOT NULL", [name]))
    selects: list[str] = []
    params: _Params = []
    for label, rollup_dim, rollup_keys, edge_keys, tail, condition, edge_params in arms:
        parts: list[str] = []
        part_params: _Params = []
        whole = window.rollup(
            f"SELECT {rollup_keys}, {_PLAIN_COUNTS} FROM rollup_dims WHERE dim = ? AND"
        )
        if whole is not None:
            parts.append(whole[0])
            part_params += [rollup_dim, *whole[1]]
        if edge is not None:
            parts.append(
                f"SELECT {edge_keys}, {_EDGE_COUNTS} FROM edge a{tail} WHERE {condition}"
            )
            # the key expression and the condition may both hold the tag's name
            part_params += edge_params * (edge_keys.count("?") + condition.count("?"))
        if not parts:
            continue
        selects.append(
            f"SELECT '{label}', k1, k2, {_SUMS} FROM ({' UNION ALL '.join(parts)}) s "
            "GROUP BY k1, k2"
        )
        params += part_params
    if not selects:
        return {}, []
    sql = " UNION ALL ".join(selects)
    if edge is not None:
        fine = ", ".join((*_FINE, *_DIM_COUNTS))
        sql = f"WITH edge ({fine}) AS ({edge[0]}) {sql}"
        params = edge[1] + params
    out: _Groups = {}
    day_tier: list[DayTierSpend] = []
    for label, k1, k2, *figures in ledger.query(sql, params):
        if figures[0] is None or int(figures[0]) == 0:
            continue  # an empty ledger: no totals row
        counts = {name: int(v or 0) for name, v in zip(_DIM_COUNTS, figures, strict=True)}
        if label == "day_tier":
            day_tier.append(
                DayTierSpend(
                    day=str(k1),
                    tier=str(k2),
                    cost_usd=_usd(counts["cost_ticks"]),
                    attempts=counts["attempts"],
                )
            )
        else:
            out[str(label), str(k1)] = counts
    day_tier.sort(key=lambda s: (s.day, s.tier))
    return out, day_tier


def _keys(first: str, second: str = "''") -> str:
    return f"{first} AS k1, {second} AS k2"


def _add_missing_tags(groups: _Groups, dims: list[str]) -> None:
    """A tag breakdown's ``(none)`` group: the attempts without that tag, which the rollups do
    not store; every count is additive and an attempt has at most one value per tag, so it is
    the totals less the tagged groups."""
    total = groups.get(("all", "all"))
    if total is None:
        return
    for dim in dims:
        if not dim.startswith(rollup.TAG_PREFIX):
            continue
        rest = {name: total[name] for name in _DIM_COUNTS}
        for (d, key), counts in groups.items():
            if d == dim and key != rollup.NONE:
                for name in _DIM_COUNTS:
                    rest[name] -= counts[name]
        labelled = groups.pop((dim, rollup.NONE), {})  # only labels so far (see _add_labels)
        if rest["attempts"] > 0:
            groups[dim, rollup.NONE] = {**labelled, **rest}


def _add_latency(ledger: LedgerSource, window: _Window, groups: _Groups) -> None:
    source, params = window.union(
        "SELECT day, tier, model, bucket_s, n FROM latency_daily WHERE",
        f"SELECT SUBSTR(a.ts, 1, 10), a.tier, a.model, {rollup.RAW_BUCKET}, COUNT(*) "
        "FROM attempts a WHERE {where} GROUP BY 1, 2, 3, 4",
    )
    dims = sorted({d for d, _ in groups if d in _LATENCY_DIMS})
    selects = ["SELECT 'all' AS dim, 'all' AS k, bucket_s AS b, SUM(n) AS n FROM lat GROUP BY 3"]
    selects += [f"SELECT '{d}', {d}, bucket_s, SUM(n) FROM lat GROUP BY 2, 3" for d in dims]
    rows = ledger.query(
        f"WITH lat (day, tier, model, bucket_s, n) AS ({source}) "
        "SELECT dim, k, MIN(CASE WHEN cum >= 0.5 * tot THEN b END), "
        "MIN(CASE WHEN cum >= 0.95 * tot THEN b END) FROM ("
        "SELECT dim, k, b, SUM(n) OVER (PARTITION BY dim, k ORDER BY b) AS cum, "
        "SUM(n) OVER (PARTITION BY dim, k) AS tot FROM ("
        f"{' UNION ALL '.join(selects)}) h) c GROUP BY dim, k",
        params,
    )
    for dim, key, p50, p95 in rows:
        group = groups.get((str(dim), str(key)))
        if group is not None:
            group["latency_p50_s"] = None if p50 is None else float(p50)
            group["latency_p95_s"] = None if p95 is None else float(p95)


def _add_labels(ledger: LedgerSource, window: _Window, groups: _Groups, dims: list[str]) -> None:
    """Labelled accuracy per group: the labels are joined to their routes' final attempts
    once (a CTE the database materialises), then counted per breakdown."""
    dialect = ledger.dialect
    keys = rollup.raw_dim_keys(dialect)
    columns = [f"{keys[k]} AS {k}" if k in keys else f"a.{k} AS {k}" for k in _FINE]
    figures = "COUNT(a.correct), SUM(a.correct), COUNT(a.score), SUM(a.score)"
    selects = [f"SELECT 'all', 'all', {figures} FROM lab a"]
    params: _Params = []
    for dim in dims:
        if dim in keys:
            selects.append(f"SELECT '{dim}', a.{dim}, {figures} FROM lab a GROUP BY 2")
        elif dim == rollup.TOOL:
            join, tool, condition = rollup.tool_join(dialect)
            selects.append(
                f"SELECT '{dim}', {tool}, {figures} FROM lab a{join} WHERE {condition} GROUP BY 2"
            )
        else:
            tag = rollup.tag_value(dialect)
            selects.append(
                f"SELECT '{dim}', COALESCE({tag}, '{rollup.NONE}'), {figures} FROM lab a "
                "GROUP BY 2"
            )
            params.append(dim.removeprefix(rollup.TAG_PREFIX))
    sql = (
        f"WITH lab AS (SELECT {', '.join(columns)}, l.correct AS correct, l.score AS score "
        # CROSS JOIN makes SQLite drive the join from the (small) labels table.
        "FROM labels l CROSS JOIN attempts a WHERE a.route_id = l.route_id AND a.final = 1 "
        f"AND {window.rows_clause}) {' UNION ALL '.join(selects)}"
    )
    for dim, key, n_correct, n_true, n_score, score_sum in ledger.query(
        sql, [*window.rows_params, *params]
    ):
        group = groups.get((str(dim), str(key)))
        if group is None and str(dim).startswith(rollup.TAG_PREFIX) and key == rollup.NONE:
            group = groups.setdefault((str(dim), rollup.NONE), {})  # filled by _add_missing_tags
        if group is not None:
            group["labelled"] = max(int(n_correct), int(n_score))
            group["n_correct"] = int(n_correct)
            group["n_true"] = int(n_true or 0)
            group["mean_score"] = float(score_sum) / int(n_score) if n_score else None


def _group_stats(key: str, g: dict[str, Any]) -> GroupStats:  # Any: see _Groups
    routes, escalated = g.get("routes", 0), g.get("escalated", 0)
    cost_usd = _usd(g.get("cost_ticks", 0))
    cf_usd = _usd(g.get("cf_ticks", 0))
    n_correct, n_true = g.get("n_correct", 0), g.get("n_true", 0)
    return GroupStats(
        key=key,
        routes=routes,
        attempts=g.get("attempts", 0),
        escalated_routes=escalated,
        escalation_rate=escalated / routes if routes else None,
        cost_usd=cost_usd,
        unknown_cost_attempts=g.get("unknown_cost", 0),
        counterfactual_cost_usd=cf_usd,
        unknown_counterfactual_routes=g.get("unknown_cf", 0),
        savings_usd=cf_usd - cost_usd,
        savings_ratio=float(cf_usd / cost_usd) if cost_usd else None,
        accepted_routes=g.get("accepted", 0),
        budget_capped_routes=g.get("capped", 0),
        degraded_routes=g.get("degraded", 0),
        prompt_tokens=g.get("prompt_tokens", 0),
        completion_tokens=g.get("completion_tokens", 0),
        latency_p50_s=g.get("latency_p50_s"),
        latency_p95_s=g.get("latency_p95_s"),
        labelled_routes=g.get("labelled", 0),
        correct_routes=n_true,
        accuracy=n_true / n_correct if n_correct else None,
        mean_score=g.get("mean_score"),
        shadow_attempts=g.get("shadow_attempts", 0),
        shadow_cost_usd=_usd(g.get("shadow_ticks", 0)),
        shadow_unknown_cost_attempts=g.get("shadow_unknown_cost", 0),
        cached_prompt_tokens=g.get("cached_prompt_tokens", 0),
        reasoning_tokens=g.get("reasoning_tokens", 0),
    )


def _usd(ticks: int) -> Decimal:
    """Ticks -> Decimal USD without trailing zeros (``0.004``, not ``0.0040000000``)."""
    value = (ticks_to_usd(ticks) or Decimal(0)).normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def _top_reasons(ledger: LedgerSource, window: _Window) -> list[ReasonCount]:
    source, params = window.union(
        "SELECT reason, n FROM reasons_daily WHERE",
        "SELECT a.reason AS reason, 1 AS n FROM attempts a "
        "WHERE a.decision = 'escalate' AND {where}",
    )
    rows = ledger.query(
        f"SELECT reason, SUM(n) FROM ({source}) r GROUP BY reason "
        f"ORDER BY 2 DESC, 1 LIMIT {TOP_REASONS}",
        params,
    )
    return [ReasonCount(reason=str(r), count=int(n)) for r, n in rows]


def _verifier_stats(ledger: LedgerSource, window: _Window) -> list[VerifierStats]:
    source, params = window.union(
        "SELECT verifier, n, passed FROM verdicts_daily WHERE",
        _RAW_VERDICTS[ledger.dialect] + " WHERE {where}",
    )
    rows = ledger.query(
        f"SELECT verifier, SUM(n), SUM(passed) FROM ({source}) v "
        "GROUP BY verifier ORDER BY verifier",
        params,
    )
    return [
        VerifierStats(
            verifier=str(name),
            verdicts=int(n),
            passed=int(ok),
            pass_rate=int(ok) / int(n) if n else None,
        )
        for name, n, ok in rows
    ]


def csv_rows(report: CostReport) -> list[dict[str, str]]:
    """The CSV rows as dicts (dimension, key, then every GroupStats field)."""
    out: list[dict[str, str]] = []
    for dimension, groups in (("all", [report.totals]), *report.breakdowns.items()):
        for group in groups:
            row = {"dimension": dimension}
            values = group.model_dump(mode="json")  # money as plain decimal strings
            row.update({k: "" if v is None else str(v) for k, v in values.items()})
            out.append(row)
    return out


def write_csv(report: CostReport) -> str:
    """The report as CSV text (same as ``report.to_csv()``)."""
    rows = csv_rows(report)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
