"""The amortised view of reserved GPUs: what a fleet costs per period, spread over its calls.

A local tier's ledger cost is marginal: $/GPU-hour × the GPU time each call held (tokens ÷
throughput, or its latency), so capacity that is reserved but idle is never charged and savings
assume the fleet is fully used. Finance pays for the reservation. Declare the fleet in the
policy's ``reports:`` section, keyed by tier name::

    reports:
      fleet:
        "local:qwen": {gpus: 2, usd_per_gpu_hour: "2.49"}
        "local:mixtral-8x7b": {}      # gpus, usd_per_gpu_hour, throughput from the tier

An entry may omit ``gpus``, ``usd_per_gpu_hour`` and ``throughput_tokens_per_s``: they come from
the policy's tier of that name. The fleet is taken as reserved around the clock over the report's
window (its ``since`` .. ``until``, the ``until`` capped at the report's time; an open end: the
first / last day with attempts).

For each fleet tier the report shows, beside the ledger's marginal cost:

* reserved GPU-hours = gpus × hours of the window; amortised cost = reserved GPU-hours ×
  $/GPU-hour (the fleet's cost for the period, whatever its load);
* used GPU-hours: with ``throughput_tokens_per_s``, tokens ÷ throughput × gpus (as the tier's
  price charges them); without, marginal cost ÷ $/GPU-hour;
* utilisation = used ÷ reserved GPU-hours; idle cost = amortised − marginal;
* per attempt and per route: amortised cost ÷ attempts (routes) it served;
* the totals with the fleet amortised: ledger spend − the fleet's marginal cost + its amortised
  cost, and the savings against the same frontier-only counterfactual; each team's share of a
  fleet's amortised cost is its share of the fleet's marginal cost (its GPU time).

Example:
    >>> f = Fleet.from_config("local:qwen", {"gpus": 2, "usd_per_gpu_hour": "2.49"}, tiers={})
    >>> f.gpus, f.usd_per_gpu_hour
    (2, Decimal('2.49'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from paxis_router.errors import ConfigError
from paxis_router.reports.cost_report import Usd
from paxis_router.reports.pivot import Pivot, zone

if TYPE_CHECKING:
    from paxis_router.reports.cost_report import CostReport

_HOUR = Decimal(3600)


@dataclass(frozen=True, slots=True)
class Fleet:
    """GPUs reserved for one local tier."""

    tier: str
    gpus: int
    usd_per_gpu_hour: Decimal
    throughput_tokens_per_s: Decimal | None = None

    @classmethod
    def from_config(
        cls,
        tier: str,
        entry: object,
        *,
        tiers: Mapping[str, Mapping[str, Any]],  # Any: the policy's tier entries (YAML)
        source: str | None = None,
    ) -> Fleet:
        """One ``reports.fleet`` entry; missing fields come from the policy's tier ``tier``."""
        path = f"reports.fleet.{tier}"
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ConfigError("give a mapping (gpus, usd_per_gpu_hour)", source=source, field=path)
        unknown = set(entry) - {"gpus", "usd_per_gpu_hour", "throughput_tokens_per_s"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", source=source, field=path)
        merged = {**{k: v for k, v in tiers.get(tier, {}).items() if v is not None}, **entry}
        if "usd_per_gpu_hour" not in merged:
            raise ConfigError(
                "give usd_per_gpu_hour (or declare it on a tier of that name)",
                source=source,
                field=path,
            )
        gpus = merged.get("gpus", 1)
        if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
            raise ConfigError(f"gpus must be a whole number >= 1, got {gpus!r}", source=source,
                              field=f"{path}.gpus")  # fmt: skip
        price = _amount(merged["usd_per_gpu_hour"], source, f"{path}.usd_per_gpu_hour")
        throughput = merged.get("throughput_tokens_per_s")
        rate = None
        if throughput is not None:
            rate = _amount(throughput, source, f"{path}.throughput_tokens_per_s")
            if rate <= 0:
                raise ConfigError("must be above 0", source=source,
                                  field=f"{path}.throughput_tokens_per_s")  # fmt: skip
        return cls(tier, gpus, price, rate)


def fleets_from_config(
    section: object, *, tiers: Mapping[str, Mapping[str, Any]], source: str | None = None
) -> tuple[Fleet, ...]:
    """The ``reports.fleet`` mapping (tier name -> entry); ``tiers``: the policy's tiers by name
    (Any: YAML values)."""
    if section is None:
        return ()
    if not isinstance(section, Mapping):
        raise ConfigError("give a mapping of tier name -> fleet", source=source,
                          field="reports.fleet")  # fmt: skip
    return tuple(
        Fleet.from_config(str(tier), entry, tiers=tiers, source=source)
        for tier, entry in section.items()
    )


class FleetStats(BaseModel):
    """One fleet tier over the window: reserved against used, amortised against marginal."""

    model_config = ConfigDict(frozen=True)

    tier: str
    gpus: int
    usd_per_gpu_hour: Usd
    hours: float
    reserved_gpu_hours: float
    used_gpu_hours: float
    utilisation: float | None
    amortised_cost_usd: Usd
    marginal_cost_usd: Usd
    idle_cost_usd: Usd
    attempts: int
    routes: int
    amortised_usd_per_attempt: Usd | None
    marginal_usd_per_attempt: Usd | None
    amortised_usd_per_route: Usd | None


class TeamAmortised(BaseModel):
    """One team's spend with the fleets amortised (its share: its share of each fleet's GPU
    time, i.e. of the fleet's marginal cost)."""

    model_config = ConfigDict(frozen=True)

    team: str
    marginal_cost_usd: Usd
    amortised_cost_usd: Usd
    counterfactual_cost_usd: Usd


class AmortisedView(BaseModel):
    """The report's totals with reserved fleets amortised, beside the marginal figures."""

    model_config = ConfigDict(frozen=True)

    since: datetime
    until: datetime
    hours: float
    fleets: list[FleetStats]
    marginal_cost_usd: Usd
    amortised_cost_usd: Usd
    counterfactual_cost_usd: Usd
    marginal_savings_usd: Usd
    amortised_savings_usd: Usd
    teams: list[TeamAmortised]


def amortise(
    report: CostReport,
    fleets: tuple[Fleet, ...],
    *,
    team_tier: Pivot | None = None,
    now: datetime | None = None,
) -> AmortisedView | None:
    """The amortised view of ``report`` (built ``by`` at least ``tier``) for ``fleets``;
    ``team_tier``: ``pivot(ledger, "team", "tier", ...)`` over the same window, for the per-team
    split. None when there are no fleets or no window (an empty ledger with open ends)."""
    if not fleets:
        return None
    window = _window(report, now or report.generated_at)
    if window is None:
        return None
    since, until = window
    hours = Decimal((until - since).total_seconds()) / _HOUR
    tiers = {g.key: g for g in report.breakdowns.get("tier", [])}
    out: list[FleetStats] = []
    for fleet in fleets:
        group = tiers.get(fleet.tier)
        marginal = group.cost_usd if group else Decimal(0)
        attempts = group.attempts if group else 0
        routes = group.routes if group else 0
        tokens = (group.prompt_tokens + group.completion_tokens) if group else 0
        reserved_h = hours * fleet.gpus
        cost = reserved_h * fleet.usd_per_gpu_hour
        if fleet.throughput_tokens_per_s is not None:
            used_h = Decimal(tokens) / fleet.throughput_tokens_per_s * fleet.gpus / _HOUR
        else:
            used_h = marginal / fleet.usd_per_gpu_hour if fleet.usd_per_gpu_hour else Decimal(0)
        out.append(
            FleetStats(
                tier=fleet.tier,
                gpus=fleet.gpus,
                usd_per_gpu_hour=fleet.usd_per_gpu_hour,
                hours=float(hours),
                reserved_gpu_hours=float(reserved_h),
                used_gpu_hours=float(used_h),
                utilisation=float(used_h / reserved_h) if reserved_h else None,
                amortised_cost_usd=cost,
                marginal_cost_usd=marginal,
                idle_cost_usd=cost - marginal,
                attempts=attempts,
                routes=routes,
                amortised_usd_per_attempt=cost / attempts if attempts else None,
                marginal_usd_per_attempt=marginal / attempts if attempts else None,
                amortised_usd_per_route=cost / routes if routes else None,
            )
        )
    marginal_fleet = sum((f.marginal_cost_usd for f in out), Decimal(0))
    amortised_fleet = sum((f.amortised_cost_usd for f in out), Decimal(0))
    amortised = report.total_cost_usd - marginal_fleet + amortised_fleet
    cf = report.counterfactual_cost_usd
    return AmortisedView(
        since=since,
        until=until,
        hours=float(hours),
        fleets=out,
        marginal_cost_usd=report.total_cost_usd,
        amortised_cost_usd=amortised,
        counterfactual_cost_usd=cf,
        marginal_savings_usd=cf - report.total_cost_usd,
        amortised_savings_usd=cf - amortised,
        teams=_teams(report, out, team_tier),
    )


def _teams(
    report: CostReport, fleets: list[FleetStats], team_tier: Pivot | None
) -> list[TeamAmortised]:
    if team_tier is None:
        return []
    by_fleet = {f.tier: f for f in fleets}
    teams = {g.key: g for g in report.breakdowns.get("team", [])}
    out = []
    for team in team_tier.rows:
        marginal = sum((c.stats.cost_usd for c in team_tier.cells if c.row == team), Decimal(0))
        amortised = marginal
        for tier, fleet in by_fleet.items():
            cell = team_tier.cell(team, tier)
            if cell is None:
                continue
            share = cell.cost_usd / fleet.marginal_cost_usd if fleet.marginal_cost_usd else 0
            amortised += fleet.amortised_cost_usd * share - cell.cost_usd
        cf = sum((c.stats.counterfactual_cost_usd for c in team_tier.cells if c.row == team),
                 Decimal(0))  # fmt: skip
        group = teams.get(team)
        out.append(
            TeamAmortised(
                team=team,
                marginal_cost_usd=group.cost_usd if group else marginal,
                amortised_cost_usd=amortised,
                counterfactual_cost_usd=cf,
            )
        )
    return out


def _window(report: CostReport, now: datetime) -> tuple[datetime, datetime] | None:
    days = sorted({row.day for row in report.spend_by_day_tier})
    local = zone(report.tz)
    since = report.since
    if since is None:
        if not days:
            return None
        first = date.fromisoformat(days[0])
        since = datetime(first.year, first.month, first.day, tzinfo=local).astimezone(UTC)
    until = report.until
    if until is None:
        if not days:
            return None
        last = date.fromisoformat(days[-1]) + timedelta(days=1)
        until = datetime(last.year, last.month, last.day, tzinfo=local).astimezone(UTC)
    until = min(until, now)
    return (since, until) if until > since else None


def _amount(value: object, source: str | None, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"not a number: {value!r}", source=source, field=field) from exc
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"must be a non-negative number, got {value!r}", source=source,
                          field=field)  # fmt: skip
    return amount
