"""Budgets per team per day or month: once spent, the router stops escalating or refuses.

This is the one budget system: the gate keeps none (a ``gate: {budgets: ...}`` section is
refused at load with the way to write it here).

``Budgets`` is a ledger sink: the router records every attempt into it, so spend is tracked in
memory. At the first check of each period it reads the period's spend so far from the ledger
(``SUM(cost_ticks)`` by team since the period's start, UTC), then adds what it sees recorded.

Multi-process caveat: each process reads the ledger once per team and period, then counts only
its own attempts. N router processes sharing a ledger can therefore overshoot a budget by up to
what the other processes spend in the meantime. Give each process a share of the budget, or
restart it to re-read, when that matters. Attempts whose price is unknown add nothing (logged at
WARNING); use priced tiers for budgeted teams.

YAML (the ``budgets:`` section of a policy)::

    budgets:
      on_exhausted: cap          # cap: stop escalating, return the worker's answer
                                 # refuse: raise BudgetExceeded
      teams:
        claims: {day: "5.00", month: "100"}
        research: {month: "20", on_exhausted: refuse}

Example:
    >>> from decimal import Decimal
    >>> budgets = Budgets.from_config({"teams": {"claims": {"day": "0.01"}}})
    >>> budgets.exhausted("claims", extra_usd=Decimal("0.02")) is not None
    True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal

from paxis_router.errors import BudgetExceeded, ConfigError
from paxis_router.ledger.base import ticks_to_usd
from paxis_router.ledger.sqlite import format_ts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from paxis_router.reports.cost_report import LedgerSource
    from paxis_router.types import CallRecord, ChatRequest

logger = logging.getLogger(__name__)

Period = Literal["day", "month"]
OnExhausted = Literal["cap", "refuse"]
PERIODS: tuple[Period, ...] = ("day", "month")


@dataclass(frozen=True, slots=True)
class Budget:
    """One team's limit for one period (a UTC calendar day or month). A period ends at UTC
    midnight (``day``) or the first of the next month, 00:00 UTC (``month``): spend counts
    from zero again then (plus what the ledger holds since)."""

    team: str
    period: Period
    limit_usd: Decimal
    on_exhausted: OnExhausted = "cap"

    def period_start(self, now: datetime) -> datetime:
        """The start (UTC) of the period that contains ``now``."""
        now = now.astimezone(UTC)
        day = 1 if self.period == "month" else now.day
        return datetime(now.year, now.month, day, tzinfo=UTC)


class Budgets:
    """Every team budget, and the spend tracked against them.

    Args:
        budgets: the limits; a team may have a daily and a monthly one.
        ledger: where the spend so far is read at the first check of each period (anything
            with ``query``, e.g. ``SQLiteLedger``/``PostgresLedger``); None starts from 0.
        clock: the current aware UTC time (injectable for tests).
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        *,
        ledger: LedgerSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.budgets = tuple(budgets)
        self.ledger = ledger
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, Period, datetime], Decimal] = {}
        self._by_team: dict[str, list[Budget]] = {}
        for budget in self.budgets:
            if budget.limit_usd < 0:
                raise ConfigError(f"budget of team {budget.team!r} is negative", field="budgets")
            self._by_team.setdefault(budget.team, []).append(budget)

    @classmethod
    def from_config(
        cls,
        section: object,
        *,
        ledger: LedgerSource | None = None,
        source: str | None = None,
    ) -> Budgets:
        """Build from the ``budgets:`` YAML section (see the module docstring)."""
        if not isinstance(section, Mapping):
            raise ConfigError("budgets must be a mapping", source=source, field="budgets")
        extra = set(section) - {"on_exhausted", "teams"}
        if extra:
            raise ConfigError(f"unknown keys {sorted(extra)}", source=source, field="budgets")
        default = _on_exhausted(section.get("on_exhausted", "cap"), source, "budgets.on_exhausted")
        teams = section.get("teams", {})
        if not isinstance(teams, Mapping):
            raise ConfigError(
                "must be a mapping of team -> limits", source=source, field="budgets.teams"
            )
        out: list[Budget] = []
        for team, limits in teams.items():
            path = f"budgets.teams.{team}"
            if not isinstance(limits, Mapping) or not limits:
                raise ConfigError("give day: and/or month: limits", source=source, field=path)
            unknown = set(limits) - {*PERIODS, "on_exhausted"}
            if unknown:
                raise ConfigError(f"unknown keys {sorted(unknown)}", source=source, field=path)
            mode = _on_exhausted(limits.get("on_exhausted", default), source, path)
            for period in PERIODS:
                if period in limits:
                    limit = _usd(limits[period], source, f"{path}.{period}")
                    out.append(Budget(str(team), period, limit, mode))
        return cls(out, ledger=ledger)

    # --- the LedgerSink side -----------------------------------------------------------------

    def record(self, entry: CallRecord) -> None:
        """Count one recorded attempt against its team's budgets."""
        if entry.team is None or entry.team not in self._by_team:
            return
        if entry.cost_usd is None:
            logger.warning(
                "attempt %s/%d of team %s has no known price: budgets cannot count it",
                entry.route_id,
                entry.attempt_index,
                entry.team,
            )
            return
        with self._lock:
            for budget in self._by_team[entry.team]:
                key = (budget.team, budget.period, budget.period_start(entry.ts))
                if key in self._spent:
                    self._spent[key] += entry.cost_usd
                elif self.ledger is None:
                    self._spent[key] = entry.cost_usd
                # else: not loaded yet; the first check reads it from the ledger.

    # --- checks ------------------------------------------------------------------------------

    def spent_usd(self, team: str, period: Period) -> Decimal:
        """What ``team`` has spent in the current ``period`` (as far as this process knows)."""
        budget = next((b for b in self._by_team.get(team, ()) if b.period == period), None)
        probe = budget or Budget(team, period, Decimal(0))
        return self._spent_in(probe, self._clock())

    def exhausted(self, team: str | None, *, extra_usd: Decimal | None = None) -> Budget | None:
        """The first budget of ``team`` that is spent (counting ``extra_usd`` not yet recorded),
        or None while every budget has room."""
        if team is None:
            return None
        now = self._clock()
        for budget in self._by_team.get(team, ()):
            spent = self._spent_in(budget, now) + (extra_usd or Decimal(0))
            if spent >= budget.limit_usd:
                return budget
        return None

    def check_start(self, request: ChatRequest) -> None:
        """Raise BudgetExceeded before a route starts when the team's budget is spent and
        that budget says ``refuse``."""
        budget = self.exhausted(request.team)
        if budget is not None and budget.on_exhausted == "refuse":
            raise BudgetExceeded(
                describe(budget, self.spent_usd(budget.team, budget.period))
                + "; the request was refused (on_exhausted: refuse)",
                team=budget.team,
                request_id=request.request_id,
            )

    def _spent_in(self, budget: Budget, now: datetime) -> Decimal:
        start = budget.period_start(now)
        key = (budget.team, budget.period, start)
        with self._lock:
            if key not in self._spent:
                # A new period: its spend starts from the ledger (or 0); past periods' counts
                # are dropped, so a long-running process keeps one count per team and period.
                for old in [k for k in self._spent if k[:2] == key[:2] and k[2] < start]:
                    del self._spent[old]
                self._spent[key] = self._load(budget.team, start)
            return self._spent[key]

    def _load(self, team: str, start: datetime) -> Decimal:
        if self.ledger is None:
            return Decimal(0)
        rows = self.ledger.query(
            "SELECT COALESCE(SUM(cost_ticks), 0) FROM attempts WHERE team = ? AND ts >= ?",
            (team, format_ts(start)),
        )
        return ticks_to_usd(int(rows[0][0])) or Decimal(0)


def describe(budget: Budget, spent_usd: Decimal | None = None) -> str:
    """A one-line explanation of an exhausted budget.

    Example:
        >>> describe(Budget("claims", "day", Decimal("5")))
        "team 'claims' has used up its daily budget of $5"
    """
    period = "daily" if budget.period == "day" else "monthly"
    text = f"team {budget.team!r} has used up its {period} budget of ${budget.limit_usd}"
    return text if spent_usd is None else f"{text} (spent ${spent_usd:.4f})"


def _usd(value: object, source: str | None, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"not a dollar amount: {value!r}", source=source, field=field) from exc
    if not amount.is_finite() or amount < 0:
        raise ConfigError(
            f"must be a non-negative amount, got {value!r}", source=source, field=field
        )
    return amount


def _on_exhausted(value: object, source: str | None, field: str) -> OnExhausted:
    if value == "cap":
        return "cap"
    if value == "refuse":
        return "refuse"
    raise ConfigError(f"must be cap or refuse, got {value!r}", source=source, field=field)
