"""Ledger -> CostReport, aggregated by SQL inside the database (never row by row in Python).

One SQL statement per report (``_report_sql``), the same text on SQLite and PostgreSQL but for
the JSON walks. Whole UTC days are read from the daily rollups the ledger keeps
(``ledger/rollup.py``), the attempt rows the rollups cannot answer for (the partial days at the
window's edges, or a filtered window) are read once, so a report over millions of rows takes well
under a second. Money comes back as exact integer tick sums and becomes ``Decimal``. Rows
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
the router selected), ``tier``, ``model``, ``day``, ``data_class``, ``task`` (the orchestrator
task), ``tool`` or ``tag:<key>``; route figures (routes, escalations, counterfactual, labels) are
counted on each route's final attempt, so by ``tier`` they land on the tier that ended the route.
An attempt that called two tools counts, whole, in both tool groups (tool groups overlap and add
up to more than the total); ``(none)`` holds the attempts without a task, tool or that tag.
``where`` keeps only the attempts with the given keys (``{"tag:project": "apollo"}``).
``cached_prompt_tokens`` and ``reasoning_tokens`` are summed like the other tokens.

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
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from paxis_router.errors import ConfigError
from paxis_router.ledger import rollup
from paxis_router.ledger.schema import TICKS_PER_USD
from paxis_router.reports import _pivot_sql as _q, _report_sql as _sql

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
    """The figures of one breakdown row (``key``: the team, skill, tier, model, day, data class,
    task, tool or tag value of the group)."""

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
    ``spend_by_day_tier`` [{day, tier, cost_usd, attempts}], ``where`` (the filter), ``tz``
    (the zone whose midnights cut the days of ``day`` and ``spend_by_day_tier``).

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
    tz: str = "UTC"
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
# One SQL statement (``_report_sql``): whole UTC days from the daily rollups, the rest from the
# attempt rows read once; Python only assembles the figures.

_COUNTS = rollup.DIM_COUNTS


def _valid_dimension(name: str) -> bool:
    return name in DIMENSIONS or (
        name.startswith(rollup.TAG_PREFIX) and len(name) > len(rollup.TAG_PREFIX)
    )


def build(
    ledger: LedgerSource,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Sequence[str] = DEFAULT_BY,
    now: datetime | None = None,
    where: Mapping[str, str] | None = None,
    tz: str | None = None,
) -> CostReport:
    """Aggregate the ledger over ``[since, until)`` into a CostReport (one SQL statement).

    Args:
        ledger: a ``SQLiteLedger`` or ``PostgresLedger`` (anything with ``query`` and ``dialect``).
        since: first instant included (aware); None for the beginning.
        until: first instant excluded (aware); None for no end.
        by: breakdown dimensions, among ``DIMENSIONS`` and ``tag:<key>``.
        now: the report's ``generated_at`` (injectable for tests).
        where: keep only the attempts whose dimension has this key, e.g.
            ``{"tag:project": "apollo"}`` (several: all must hold; ``tool``: the attempt called
            it; ``(none)``: the attempt has none). A filtered report reads the window's rows.
        tz: an IANA zone (``Europe/Paris``) whose midnights cut the ``day`` breakdown and the
            spend by day and tier (one more statement over the window's rows, grouped by UTC
            hour: the rollups keep UTC days; see ``pivot``); the ``day`` groups then have no
            latency or labels. None or ``UTC``: UTC days from the rollups.

    Raises:
        ConfigError: an unknown dimension, a naive or empty window.
        LedgerError: the database refused the query.
    """
    unknown = [d for d in (*by, *(where or {})) if not _valid_dimension(d)]
    if unknown:
        raise ConfigError(
            f"unknown report dimension(s) {unknown}; expected some of {', '.join(DIMENSIONS)} "
            "or tag:<key>"
        )
    for name in (*by, *(where or {})):
        if name.startswith(rollup.TAG_PREFIX):
            _sql.check_tag(name.removeprefix(rollup.TAG_PREFIX))
    if ledger.dialect not in ("sqlite", "postgresql"):
        raise ConfigError(f"no report SQL for ledger dialect {ledger.dialect!r}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ConfigError(f"report {name}={value!r} is naive; give an aware UTC datetime")
    if since is not None and until is not None and since >= until:
        raise ConfigError(f"report window is empty: since {since} is not before until {until}")
    filters = dict(where or {})
    window = _sql.Window.of(
        since, until, _sql.where_sql(ledger.dialect, filters) if filters else None
    )
    dims = list(dict.fromkeys(by))
    local = tz is not None and tz.upper() not in ("UTC", "Z", "ETC/UTC")
    sql, params = _sql.report_sql(
        ledger.dialect, window, [d for d in dims if d != "day"] if local else dims
    )
    parts = _Parts()
    for kind, k1, k2, x, *values in ledger.query(sql, params):
        parts.add(str(kind), k1, k2, x, values)
    groups = parts.groups
    _add_latency(parts.histograms, groups)
    _add_labels(parts.labels, groups)
    _add_missing_tags(groups, dims)
    stats = {key: _group_stats(key[1], values) for key, values in groups.items()}
    total = stats.get(("all", "all")) or _group_stats("all", {})
    data = {name: getattr(total, name) for name in GroupStats.model_fields}
    del data["key"], data["cost_usd"]
    reasons = sorted(parts.reasons.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    day_tier = sorted(parts.day_tier, key=lambda s: (s.day, s.tier))
    zone_name = "UTC"
    if local:
        zone_name, day_tier, by_day = _local_days(ledger, since, until, filters, tz)
        if "day" in dims:
            stats.update({("day", k): s for k, s in by_day.items()})
    return CostReport(
        generated_at=now or datetime.now(UTC),
        since=since,
        until=until,
        where=filters,
        total_cost_usd=total.cost_usd,
        prices_complete=total.unknown_cost_attempts == 0
        and total.unknown_counterfactual_routes == 0,
        top_escalation_reasons=[ReasonCount(reason=r, count=n) for r, n in reasons],
        verifiers=[
            VerifierStats(verifier=v, verdicts=n, passed=ok, pass_rate=ok / n if n else None)
            for v, (n, ok) in sorted(parts.verdicts.items())
        ],
        breakdowns={
            dim: sorted((s for (d, _), s in stats.items() if d == dim), key=lambda s: s.key)
            for dim in dims
        },
        spend_by_day_tier=day_tier,
        tz=zone_name,
        **data,
    )


_Groups = dict[tuple[str, str], dict[str, Any]]  # Any: figures of mixed types, by name


class _Parts:
    """The rows of the report statement, sorted by kind (see ``_report_sql``)."""

    def __init__(self) -> None:
        self.groups: _Groups = {}
        self.day_tier: list[DayTierSpend] = []
        self.histograms: dict[tuple[str, str], list[tuple[float, int]]] = {}
        self.labels: dict[tuple[str, str], tuple[int, int, int, float | None]] = {}
        self.reasons: dict[str, int] = {}
        self.verdicts: dict[str, tuple[int, int]] = {}

    def add(self, kind: str, k1: Any, k2: Any, x: Any, values: list[Any]) -> None:  # Any: DB
        prefix, _, label = kind.partition(":")
        if prefix == "g":
            if not values[0]:
                return  # an empty ledger: no totals
            counts = dict(zip(_COUNTS, map(int, values), strict=True))  # sums: never NULL
            if label == "day_tier":
                self.day_tier.append(
                    DayTierSpend(
                        day=str(k1),
                        tier=str(k2),
                        cost_usd=_usd(counts["cost_ticks"]),
                        attempts=counts["attempts"],
                    )
                )
            else:
                self.groups[label, str(k1)] = counts
        elif prefix == "h":
            self.histograms.setdefault((label, str(k1)), []).append((float(x), int(values[0])))
        elif prefix == "l":
            n_correct, n_true, n_score = (int(v or 0) for v in values[:3])
            self.labels[label, str(k1)] = (n_correct, n_true, n_score, x)
        elif prefix == "r":
            self.reasons[str(k1)] = int(values[0])
        else:  # "v"
            self.verdicts[str(k1)] = (int(values[0]), int(values[1] or 0))


def _add_latency(
    histograms: dict[tuple[str, str], list[tuple[float, int]]], groups: _Groups
) -> None:
    """Nearest-rank p50 and p95 from each group's histogram (buckets of 2 significant digits)."""
    for key, buckets in histograms.items():
        group = groups.get(key)
        if group is None:
            continue
        buckets.sort()
        total = sum(n for _, n in buckets)
        if not total:
            continue
        cumulative = 0
        p50: float | None = None
        for bucket, n in buckets:
            cumulative += n
            if p50 is None and cumulative >= 0.5 * total:
                p50 = bucket
            if cumulative >= 0.95 * total:
                group["latency_p50_s"], group["latency_p95_s"] = p50, bucket
                break


def _add_labels(
    labels: dict[tuple[str, str], tuple[int, int, int, float | None]], groups: _Groups
) -> None:
    for (dim, key), (n_correct, n_true, n_score, score_sum) in labels.items():
        group = groups.get((dim, key))
        if group is None and dim.startswith(rollup.TAG_PREFIX) and key == rollup.NONE:
            group = groups.setdefault((dim, rollup.NONE), {})  # filled by _add_missing_tags
        if group is not None and (n_correct or n_score):
            group["labelled"] = max(n_correct, n_score)
            group["n_correct"] = n_correct
            group["n_true"] = n_true
            group["mean_score"] = float(score_sum or 0) / n_score if n_score else None


def _add_missing_tags(groups: _Groups, dims: list[str]) -> None:
    """A tag breakdown's ``(none)`` group: the attempts without that tag, which the rollups do
    not store; every count is additive and an attempt has at most one value per tag, so it is
    the totals less the tagged groups."""
    total = groups.get(("all", "all"))
    for dim in dims:
        if not dim.startswith(rollup.TAG_PREFIX):
            continue
        labelled = groups.pop((dim, rollup.NONE), {})  # only labels so far (see _add_labels)
        if total is None:
            continue
        rest = {name: total[name] for name in _COUNTS}
        for (d, _), counts in groups.items():
            if d == dim:
                for name in _COUNTS:
                    rest[name] -= counts[name]
        if rest["attempts"] > 0:
            groups[dim, rollup.NONE] = {**labelled, **rest}


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


def _local_days(
    ledger: LedgerSource,
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str],
    tz: str | None,
) -> tuple[str, list[DayTierSpend], dict[str, GroupStats]]:
    """Spend by tier and local day, and the figures of each local day (one statement over the
    window's rows, grouped by UTC hour, each hour put on its local day)."""
    zone_info = _q.zone(tz)
    sql, params = _q.raw_sql(ledger.dialect, "tier", "day", since, until, filters, zone_info)
    by_tier_day: dict[tuple[str, str], list[int]] = {}
    by_day: dict[str, list[int]] = {}
    for tier, bucket, *values in ledger.query(sql, params):
        day = _q.column(str(bucket), "day", zone_info)
        for acc in (by_tier_day.setdefault((str(tier), day), [0] * len(_COUNTS)),
                    by_day.setdefault(day, [0] * len(_COUNTS))):  # fmt: skip
            for i, v in enumerate(values):
                acc[i] += int(v or 0)
    cost, attempts = _COUNTS.index("cost_ticks"), _COUNTS.index("attempts")
    day_tier = sorted(
        (
            DayTierSpend(day=d, tier=t, cost_usd=_usd(v[cost]), attempts=v[attempts])
            for (t, d), v in by_tier_day.items()
            if v[attempts]
        ),
        key=lambda s: (s.day, s.tier),
    )
    days = {d: _group_stats(d, dict(zip(_COUNTS, v, strict=True))) for d, v in by_day.items()}
    return str(getattr(zone_info, "key", "UTC")), day_tier, days


def _usd(ticks: int) -> Decimal:
    """Ticks -> Decimal USD without trailing zeros (``0.004``, not ``0.0040000000``; ``10``, not
    ``1E+1``). Exact: ``scaleb`` only moves the exponent."""
    if not ticks:
        return _ZERO
    if not ticks % TICKS_PER_USD:
        return Decimal(ticks // TICKS_PER_USD)
    return Decimal(ticks).scaleb(-10).normalize()


_ZERO = Decimal(0)


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
