"""Everything the HTML report and the spreadsheet export show, built from one ledger.

``build_dashboard`` runs the cost report (``cost_report.build``) and the views around it: spend
by team over time and the cross-tabs (``pivot``), budgets against actual (``budget_view``) and,
when the policy declares reserved GPUs, the amortised view (``fleet``). Each view is one SQL
statement; those keyed by time come from the daily rollups, the cross-tabs of two dimensions
read the window's rows once each.

Example:
    >>> import tempfile, pathlib
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> board = build_dashboard(SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "l.db"))
    >>> board.report.routes, board.budgets, board.amortised
    (0, [], None)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from paxis_router.errors import ConfigError
from paxis_router.reports.budget_view import FORECAST_METHOD, BudgetStatus, budget_statuses
from paxis_router.reports.cost_report import DEFAULT_BY, CostReport, build
from paxis_router.reports.fleet import AmortisedView, amortise
from paxis_router.reports.pivot import TIME_GRAINS, Pivot, pivot
from paxis_router.reports.settings import ReportSettings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from paxis_router.reports.cost_report import LedgerSource

CROSSTABS: tuple[tuple[str, str], ...] = (("team", "skill"), ("team", "month"))
"""The cross-tabs a page shows unless told otherwise (rows × columns)."""


class Dashboard(BaseModel):
    """The cost report and the views around it (JSON: these keys; money as decimal strings)."""

    model_config = ConfigDict(frozen=True)

    report: CostReport
    grain: str
    team_over_time: Pivot | None = None
    crosstabs: list[Pivot] = Field(default_factory=list)
    budgets: list[BudgetStatus] = Field(default_factory=list)
    forecast_method: str = FORECAST_METHOD
    amortised: AmortisedView | None = None
    top_tier: str | None = None

    def to_html(self) -> str:
        """One self-contained HTML page (inline SVG, CSS and a few lines of script; no URL)."""
        from paxis_router.reports.html import render_dashboard

        return render_dashboard(self)

    def to_json(self) -> str:
        """The dashboard as JSON."""
        return self.model_dump_json(indent=2)


def build_dashboard(
    ledger: LedgerSource,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Sequence[str] = DEFAULT_BY,
    where: Mapping[str, str] | None = None,
    tz: str | None = None,
    grain: str = "day",
    crosstabs: Sequence[tuple[str, str]] = CROSSTABS,
    settings: ReportSettings | None = None,
    now: datetime | None = None,
) -> Dashboard:
    """The report over ``[since, until)`` and its views (arguments as ``cost_report.build``;
    ``grain``: ``day``, ``week`` or ``month`` for spend by team over time; ``settings``: budgets
    and fleets from a policy).

    Raises:
        ConfigError: a bad dimension, grain or zone; a naive or empty window.
    """
    if grain not in TIME_GRAINS:
        raise ConfigError(f"grain {grain!r}: expected one of {', '.join(TIME_GRAINS)}")
    settings = settings or ReportSettings()
    now = now or datetime.now(UTC)
    needed = ["team", "skill", "tier", "model", "day"]
    dims = list(dict.fromkeys([*by, *needed]))
    report = build(ledger, since=since, until=until, by=dims, now=now, where=where, tz=tz)

    def over(rows: str, cols: str) -> Pivot:
        return pivot(ledger, rows, cols, since=since, until=until, where=where, tz=tz)

    over_time = over("team", grain)
    tabs = [over(rows, cols) for rows, cols in crosstabs]
    team_tier = None
    if settings.fleets:
        team_tier = next(
            (p for p in tabs if (p.row_dim, p.col_dim) == ("team", "tier")), None
        ) or over("team", "tier")
    as_of = min(until, now) if until is not None else now
    return Dashboard(
        report=report,
        grain=grain,
        team_over_time=over_time,
        crosstabs=tabs,
        budgets=budget_statuses(ledger, settings.budgets, as_of=as_of),
        amortised=amortise(report, settings.fleets, team_tier=team_tier, now=now),
        top_tier=settings.top_tier,
    )
