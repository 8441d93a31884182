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

Alerts: each budget has thresholds (fractions of its limit; default 80 % and 100 %). The first
time a period's spend reaches one, ``Budgets`` logs it at WARNING and calls ``on_alert`` (once per
team, period, threshold and period start, in each process); ``Budgets.alerts(team)`` gives the
thresholds reached now, and ``paxis report --policy`` shows the same state.

YAML (the ``budgets:`` section of a policy)::

    budgets:
      on_exhausted: cap          # cap: stop escalating, return the worker's answer
                                 # refuse: raise BudgetExceeded
      alerts: [0.8, 1.0]         # thresholds, fractions of each limit (the default)
      teams:
        claims: {day: "5.00", month: "100"}
        research: {month: "20", on_exhausted: refuse, alerts: [0.5, 0.9, 1.0]}

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
from datetime import UTC, datetime, timedelta
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
DEFAULT_ALERTS: tuple[Decimal, ...] = (Decimal("0.8"), Decimal(1))
"""Alert thresholds when a policy names none: 80 % and 100 % of each limit."""


@dataclass(frozen=True, slots=True)
class Budget:
    """One team's limit for one period (a UTC calendar day or month). A period ends at UTC
    midnight (``day``) or the first of the next month, 00:00 UTC (``month``): spend counts
    from zero again then (plus what the ledger holds since)."""

    team: str
    period: Period
    limit_usd: Decimal
    on_exhausted: OnExhausted = "cap"
    alerts: tuple[Decimal, ...] = DEFAULT_ALERTS

    def period_start(self, now: datetime) -> datetime:
        """The start (UTC) of the period that contains ``now``."""
        now = now.astimezone(UTC)
        day = 1 if self.period == "month" else now.day
        return datetime(now.year, now.month, day, tzinfo=UTC)

    def period_end(self, now: datetime) -> datetime:
        """The end (UTC, excluded) of the period that contains ``now``.

        Example:
            >>> Budget("t", "month", Decimal(1)).period_end(datetime(2026, 12, 9, tzinfo=UTC))
            datetime.datetime(2027, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
        """
        start = self.period_start(now)
        if self.period == "day":
            return start + timedelta(days=1)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A threshold a budget's spend has reached in one period (``threshold``: a fraction of the
    limit, e.g. ``0.8``)."""

    team: str
    period: Period
    period_start: datetime
    threshold: Decimal
    limit_usd: Decimal
    spent_usd: Decimal

    def describe(self) -> str:
        """One line for a log or a page.

        Example:
            >>> start = datetime(2026, 11, 1, tzinfo=UTC)
            >>> print(BudgetAlert("claims", "month", start, Decimal("0.8"), Decimal(100),
            ...             Decimal("81.5")).describe()[:57])
            team 'claims' reached 80% of its monthly budget of $100 (
        """
        period = "daily" if self.period == "day" else "monthly"
        return (
            f"team {self.team!r} reached {self.threshold * 100:.0f}% of its {period} budget of "
            f"${self.limit_usd} (spent ${self.spent_usd:.4f} since "
            f"{self.period_start.date().isoformat()})"
        )


class Budgets:
    """Every team budget, and the spend tracked against them.

    Args:
        budgets: the limits; a team may have a daily and a monthly one.
        ledger: where the spend so far is read at the first check of each period (anything
            with ``query``, e.g. ``SQLiteLedger``/``PostgresLedger``); None starts from 0.
        clock: the current aware UTC time (injectable for tests).
        on_alert: called once per team, period, threshold and period start when the spend
            reaches a threshold (after the WARNING log line); it runs on the thread that recorded
            or checked, outside any lock, and must be quick (queue the work).
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        *,
        ledger: LedgerSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_alert: Callable[[BudgetAlert], None] | None = None,
    ):
        self.budgets = tuple(budgets)
        self.ledger = ledger
        self.on_alert = on_alert
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, Period, datetime], Decimal] = {}
        self._fired: set[tuple[str, Period, datetime, Decimal]] = set()
        self._pending: list[BudgetAlert] = []
        self._by_team: dict[str, list[Budget]] = {}
        for budget in self.budgets:
            if budget.limit_usd < 0:
                raise ConfigError(f"budget of team {budget.team!r} is negative", field="budgets")
            if any(a <= 0 for a in budget.alerts):
                raise ConfigError(
                    f"alert thresholds of team {budget.team!r} must be above 0", field="budgets"
                )
            self._by_team.setdefault(budget.team, []).append(budget)

    @classmethod
    def from_config(
        cls,
        section: object,
        *,
        ledger: LedgerSource | None = None,
        source: str | None = None,
        clock: Callable[[], datetime] | None = None,
        on_alert: Callable[[BudgetAlert], None] | None = None,
    ) -> Budgets:
        """Build from the ``budgets:`` YAML section (see the module docstring); ``clock`` and
        ``on_alert`` as for the constructor."""
        if not isinstance(section, Mapping):
            raise ConfigError("budgets must be a mapping", source=source, field="budgets")
        extra = set(section) - {"on_exhausted", "teams", "alerts"}
        if extra:
            raise ConfigError(f"unknown keys {sorted(extra)}", source=source, field="budgets")
        default = _on_exhausted(section.get("on_exhausted", "cap"), source, "budgets.on_exhausted")
        default_alerts = _alerts(section.get("alerts", DEFAULT_ALERTS), source, "budgets.alerts")
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
            unknown = set(limits) - {*PERIODS, "on_exhausted", "alerts"}
            if unknown:
                raise ConfigError(f"unknown keys {sorted(unknown)}", source=source, field=path)
            if not set(limits) & set(PERIODS):
                raise ConfigError("give day: and/or month: limits", source=source, field=path)
            mode = _on_exhausted(limits.get("on_exhausted", default), source, path)
            alerts = _alerts(limits.get("alerts", default_alerts), source, f"{path}.alerts")
            for period in PERIODS:
                if period in limits:
                    limit = _usd(limits[period], source, f"{path}.{period}")
                    out.append(Budget(str(team), period, limit, mode, alerts))
        if clock is None:
            return cls(out, ledger=ledger, on_alert=on_alert)
        return cls(out, ledger=ledger, clock=clock, on_alert=on_alert)

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
                else:
                    continue  # not loaded yet; the first check reads it from the ledger.
                self._crossed(budget, key[2], self._spent[key])
        self._emit()

    # --- checks ------------------------------------------------------------------------------

    def spent_usd(self, team: str, period: Period) -> Decimal:
        """What ``team`` has spent in the current ``period`` (as far as this process knows)."""
        budget = next((b for b in self._by_team.get(team, ()) if b.period == period), None)
        probe = budget or Budget(team, period, Decimal(0), alerts=())
        spent = self._spent_in(probe, self._clock())
        self._emit()
        return spent

    def alerts(self, team: str | None = None) -> list[BudgetAlert]:
        """The thresholds reached in the current periods, of ``team`` (None: every team), lowest
        first per budget; reading them also fires any alert not yet logged.

        Example:
            >>> budgets = Budgets.from_config({"teams": {"claims": {"day": "10"}}})
            >>> budgets.alerts("claims")
            []
        """
        now = self._clock()
        out: list[BudgetAlert] = []
        chosen = self.budgets if team is None else tuple(self._by_team.get(team, ()))
        for budget in chosen:
            spent = self._spent_in(budget, now)
            start = budget.period_start(now)
            out += [
                BudgetAlert(budget.team, budget.period, start, t, budget.limit_usd, spent)
                for t in sorted(budget.alerts)
                if spent >= budget.limit_usd * t
            ]
        self._emit()
        return out

    def exhausted(self, team: str | None, *, extra_usd: Decimal | None = None) -> Budget | None:
        """The first budget of ``team`` that is spent (counting ``extra_usd`` not yet recorded),
        or None while every budget has room."""
        if team is None:
            return None
        now = self._clock()
        found = None
        for budget in self._by_team.get(team, ()):
            spent = self._spent_in(budget, now) + (extra_usd or Decimal(0))
            if spent >= budget.limit_usd:
                found = budget
                break
        self._emit()
        return found

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
                self._fired = {f for f in self._fired if f[:2] != key[:2] or f[2] >= start}
                self._spent[key] = self._load(budget.team, start)
                self._crossed(budget, start, self._spent[key])
            return self._spent[key]

    def _crossed(self, budget: Budget, start: datetime, spent: Decimal) -> None:
        """Queue the alerts ``spent`` newly reaches (the lock is held)."""
        for threshold in budget.alerts:
            key = (budget.team, budget.period, start, threshold)
            if key not in self._fired and spent >= budget.limit_usd * threshold:
                self._fired.add(key)
                self._pending.append(
                    BudgetAlert(
                        budget.team, budget.period, start, threshold, budget.limit_usd, spent
                    )
                )

    def _emit(self) -> None:
        """Log the queued alerts at WARNING and call ``on_alert``, outside the lock."""
        if not self._pending:
            return
        with self._lock:
            pending, self._pending = self._pending, []
        for alert in sorted(pending, key=lambda a: (a.team, a.period, a.threshold)):
            logger.warning("budget alert: %s", alert.describe())
            if self.on_alert is not None:
                self.on_alert(alert)

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


def _alerts(value: object, source: str | None, field: str) -> tuple[Decimal, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(
            f"give a list of fractions of the limit, e.g. [0.8, 1.0]; got {value!r}",
            source=source,
            field=field,
        )
    out = []
    for item in value:
        amount = _usd(item, source, field)
        if amount <= 0:
            raise ConfigError(
                f"thresholds must be above 0, got {item!r}", source=source, field=field
            )
        out.append(amount)
    return tuple(sorted(set(out)))


def _on_exhausted(value: object, source: str | None, field: str) -> OnExhausted:
    if value == "cap":
        return "cap"
    if value == "refuse":
        return "refuse"
    raise ConfigError(f"must be cap or refuse, got {value!r}", source=source, field=field)
