"""Budget against actual per team: spend so far, burn-down, a forecast, alert thresholds.

The budgets are the router's (``governance.budgets``: per team per UTC day or month, with alert
thresholds); the report reads them from the same policy file (``paxis report --policy``). For
each budget, the period shown is the one that holds the report's end (its ``until``, capped at
the time the report is built):

* spent: the team's known spend from the period's start to that instant, as ``Budgets`` counts
  it (the ledger's ``cost_ticks``);
* forecast for the period's end: linear on the period's average so far, i.e. spent ÷ time
  elapsed × the period's length (for a month, the daily average so far × the days in the month);
* burn-down: the cumulative spend at the end of each UTC day of the period, and the limit;
* alerts: each threshold (fractions of the limit; default 80 % and 100 %) reached, with the UTC
  day it was reached on: the same state ``Budgets.alerts(team)`` gives the router.

One SQL statement: a team × day pivot over the periods (whole days from the rollups).

Example:
    >>> from paxis_router.governance.budgets import Budget
    >>> status = BudgetStatus.of(Budget("claims", "month", Decimal(100)),
    ...     as_of=datetime(2026, 11, 11, tzinfo=UTC), daily={"2026-11-01": Decimal(20)})
    >>> status.spent_usd, status.forecast_usd, [a.threshold for a in status.alerts]
    (Decimal('20'), Decimal('60'), [])
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from paxis_router.reports.cost_report import LedgerSource, Usd
from paxis_router.reports.pivot import pivot

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from paxis_router.governance.budgets import Budget

FORECAST_METHOD = (
    "linear on the period's average so far: spent ÷ time elapsed × the period's length "
    "(a month: the daily average so far × the days in the month)"
)


class ThresholdState(BaseModel):
    """One alert threshold of a budget: reached (on which UTC day) or not."""

    model_config = ConfigDict(frozen=True)

    threshold: Decimal
    amount_usd: Usd
    reached_on: str | None  # a UTC date, None when not reached


class BudgetStatus(BaseModel):
    """One team budget in the period that holds the report's end."""

    model_config = ConfigDict(frozen=True)

    team: str
    period: str
    period_start: datetime
    period_end: datetime
    as_of: datetime
    limit_usd: Usd
    spent_usd: Usd
    used_share: float | None
    remaining_usd: Usd
    forecast_usd: Usd
    forecast_share: float | None
    on_exhausted: str
    thresholds: list[ThresholdState]
    burn: list[tuple[str, Usd]]  # (UTC day, cumulative spend at its end or at as_of)

    @property
    def alerts(self) -> list[ThresholdState]:
        """The thresholds reached."""
        return [t for t in self.thresholds if t.reached_on is not None]

    @classmethod
    def of(cls, budget: Budget, *, as_of: datetime, daily: Mapping[str, Decimal]) -> BudgetStatus:
        """The status of ``budget`` at ``as_of`` from the team's spend per UTC day
        (``daily``: ``YYYY-MM-DD`` -> spend; days outside the period are ignored)."""
        instant = as_of - timedelta(microseconds=1)  # an end at midnight belongs to the day before
        start, end = budget.period_start(instant), budget.period_end(instant)
        spent = Decimal(0)
        burn: list[tuple[str, Decimal]] = []
        reached: dict[Decimal, str] = {}
        day = start.date()
        while datetime(day.year, day.month, day.day, tzinfo=UTC) < min(as_of, end):
            spent += daily.get(day.isoformat(), Decimal(0))
            burn.append((day.isoformat(), spent))
            for t in budget.alerts:
                if t not in reached and spent >= budget.limit_usd * t:
                    reached[t] = day.isoformat()
            day += timedelta(days=1)
        elapsed = (min(as_of, end) - start).total_seconds()
        length = (end - start).total_seconds()
        forecast = spent * Decimal(length) / Decimal(elapsed) if elapsed > 0 else spent
        limit = budget.limit_usd
        return cls(
            team=budget.team,
            period=budget.period,
            period_start=start,
            period_end=end,
            as_of=min(as_of, end),
            limit_usd=limit,
            spent_usd=spent,
            used_share=float(spent / limit) if limit else None,
            remaining_usd=limit - spent,
            forecast_usd=forecast,
            forecast_share=float(forecast / limit) if limit else None,
            on_exhausted=budget.on_exhausted,
            thresholds=[
                ThresholdState(threshold=t, amount_usd=limit * t, reached_on=reached.get(t))
                for t in sorted(budget.alerts)
            ],
            burn=burn,
        )


def budget_statuses(
    ledger: LedgerSource, budgets: Sequence[Budget], *, as_of: datetime
) -> list[BudgetStatus]:
    """Every budget's status at ``as_of`` (one team × day pivot over their periods)."""
    if not budgets:
        return []
    instant = as_of - timedelta(microseconds=1)
    since = min(b.period_start(instant) for b in budgets)
    spend = pivot(ledger, "team", "day", since=since, until=as_of)
    daily: dict[str, dict[str, Decimal]] = {}
    for cell in spend.cells:
        daily.setdefault(cell.row, {})[cell.col] = cell.stats.cost_usd
    order = {"month": 0, "day": 1}
    return [
        BudgetStatus.of(b, as_of=as_of, daily=daily.get(b.team, {}))
        for b in sorted(budgets, key=lambda b: (b.team, order[b.period]))
    ]
