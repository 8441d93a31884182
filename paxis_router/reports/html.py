"""Dashboard (or CostReport) -> one self-contained HTML page (private to the reports package).

No script, no stylesheet link, no external URL: the charts are inline SVG (``_charts``), the
tables plain HTML (``_html_tables``), so the file opens offline and can be mailed as is. The page
reads top to bottom as finance asks: the headline figures, alerts, the charts (spend by team
over time, by tier per day, against frontier-only, budget burn-down, escalation and quality by
skill), budget against actual, the amortised GPU view, the cross-tabs, then one table per
breakdown (``tag:<key>`` ones included) and the escalation reasons.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Protocol

from paxis_router.reports import _charts as charts, _html_tables as tables
from paxis_router.reports.money import counterfactual_note, display_places, usd_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.reports.budget_view import BudgetStatus
    from paxis_router.reports.cost_report import CostReport
    from paxis_router.reports.fleet import AmortisedView
    from paxis_router.reports.pivot import Pivot


class Dashboard(Protocol):
    """What the page shows (``dashboard.Dashboard`` fits)."""

    @property
    def report(self) -> CostReport: ...
    @property
    def grain(self) -> str: ...
    @property
    def team_over_time(self) -> Pivot | None: ...
    @property
    def crosstabs(self) -> Sequence[Pivot]: ...
    @property
    def budgets(self) -> Sequence[BudgetStatus]: ...
    @property
    def forecast_method(self) -> str: ...
    @property
    def amortised(self) -> AmortisedView | None: ...
    @property
    def top_tier(self) -> str | None: ...


@dataclass(frozen=True)
class _Bare:
    """A CostReport alone: no time pivot, cross-tabs, budgets or fleets."""

    report: CostReport
    grain: str = "day"
    team_over_time: Pivot | None = None
    crosstabs: Sequence[Pivot] = field(default_factory=tuple)
    budgets: Sequence[BudgetStatus] = field(default_factory=tuple)
    forecast_method: str = ""
    amortised: AmortisedView | None = None
    top_tier: str | None = None


_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1.5rem 2rem;
       max-width: 1400px; color: #1a202c; }
h1 { margin-bottom: .2rem; } .meta { color: #4a5568; margin: .2rem 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr));
         gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #cbd5e0; border-radius: 6px; padding: .6rem .9rem; }
.card .value { display: block; font-size: 1.35rem; font-weight: 650; margin-top: .2rem; }
.card .sub { display: block; color: #4a5568; font-size: .85rem; }
.alerts { border-left: 4px solid #c53030; background: #fff5f5; padding: .5rem 1rem; }
.alerts li, .warning { color: #9b2c2c; }
figure.chart { border: 1px solid #e2e8f0; border-radius: 6px; margin: 0 0 1rem 0;
               padding: .6rem .8rem; width: 100%; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
figure.chart svg { display: block; width: 100%; height: auto; }
svg text { font-size: 12px; fill: #2d3748; }
svg .grid { stroke: #edf2f7; } svg .axis { stroke: #4a5568; }
svg .rule { stroke: #c53030; stroke-dasharray: 4 3; } svg .rule-label { fill: #c53030; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem;
            margin: .4rem 0 0; padding: 0; font-size: .9rem; }
.swatch { display: inline-block; width: .9rem; height: .9rem; margin-right: .35rem;
          vertical-align: -2px; border-radius: 2px; }
.swatch.dashed { height: .25rem; vertical-align: 3px; }
.table-wrap { overflow-x: auto; max-width: 100%; margin-bottom: 1.2rem; }
table { border-collapse: collapse; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border-bottom: 1px solid #e2e8f0; padding: .3rem .6rem; white-space: nowrap; }
thead th { background: #f7fafc; white-space: normal; vertical-align: bottom; }
th[scope=row] { text-align: left; font-weight: 500; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.negative { color: #c53030; } .unpriced { color: #b7791f; font-size: .8rem; }
.note { color: #4a5568; font-size: .85rem; }
"""


def render_html(report: CostReport) -> str:
    """The page for a bare CostReport (no cross-tabs, budgets or fleets)."""
    return render_dashboard(_Bare(report))


def render_dashboard(board: Dashboard) -> str:
    """The whole page."""
    report = board.report
    largest = max([report.total_cost_usd, report.counterfactual_cost_usd,
                   *(b.limit_usd for b in board.budgets)])  # fmt: skip
    places = display_places(largest)
    sections = [
        _header(board),
        _cards(board, places),
        _alerts(board, places),
        _charts(board),
    ]
    if board.budgets:
        sections += [
            "<h2>Budget against actual</h2>",
            tables.budgets(board.budgets, places),
            f'<p class="note">Forecast: {escape(board.forecast_method)}.</p>',
        ]
    if board.amortised is not None:
        view = board.amortised
        sections += [
            "<h2>Reserved GPUs, amortised</h2>",
            f'<p class="note">The ledger charges a local tier for the GPU time each call held '
            f"(marginal); the fleet is paid for {view.hours:,.0f} hours whatever its load "
            f"(amortised). With the fleet amortised, spend is "
            f"{escape(usd_text(view.amortised_cost_usd, places))} and routing saved "
            f"{tables.saved_text(view.amortised_cost_usd, view.counterfactual_cost_usd, places)}"
            f" against frontier-only (marginal: "
            f"{tables.saved_text(view.marginal_cost_usd, view.counterfactual_cost_usd, places)}"
            ").</p>",
            tables.fleet(view, places),
        ]
    if board.crosstabs:
        sections.append("<h2>Cross-tabs</h2>")
        sections += [tables.crosstab(tab, places) for tab in board.crosstabs]
    sections.append("<h2>Breakdowns</h2>")
    sections += [tables.breakdown(dim, groups, places) for dim, groups in report.breakdowns.items()]
    sections.append(_reasons(report))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>paxis cost report</title><style>{_STYLE}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )


def _header(board: Dashboard) -> str:
    report = board.report
    since = report.since.isoformat() if report.since else "the first row"
    until = report.until.isoformat() if report.until else "now"
    filters = ", ".join(f"{k}={v}" for k, v in report.where.items())
    lines = [
        f"Window: {since} to {until} (days cut at midnight {report.tz})",
        f"Generated {report.generated_at.isoformat(timespec='seconds')}",
    ]
    if filters:
        lines.append(f"Filter: {filters}")
    meta = "".join(f'<p class="meta">{escape(line)}</p>' for line in lines)
    return f'<h1>Cost report</h1><div id="report-meta">{meta}</div>'


def _cards(board: Dashboard, places: int) -> str:
    report = board.report
    share = (
        None
        if not report.counterfactual_cost_usd
        else float(report.savings_usd / report.counterfactual_cost_usd)
    )
    saved = tables.saved_text(report.total_cost_usd, report.counterfactual_cost_usd, places)
    cards = [
        ("spend", "Spend", escape(usd_text(report.total_cost_usd, places)),
         f"{report.attempts:,} attempts" + _unpriced(report.unknown_cost_attempts, "attempts")),
        ("frontier-only", "Frontier-only", escape(usd_text(report.counterfactual_cost_usd, places)),
         "the same routes on the top tier"
         + _unpriced(report.unknown_counterfactual_routes, "routes")),
        ("saved", "Saved", saved,
         "" if report.savings_ratio is None or share is None or share < 0
         else f"frontier-only costs {report.savings_ratio:.1f}× as much"),
        ("routes", "Routes", f"{report.routes:,}",
         f"{report.escalated_routes:,} escalated ({tables.percent(report.escalation_rate)})"),
        ("accuracy", "Accuracy (labelled)", tables.percent(report.accuracy),
         f"{report.labelled_routes:,} labelled routes"),
    ]  # fmt: skip
    if report.shadow_attempts:
        shadow_unpriced = report.shadow_unknown_cost_attempts
        cards.append(("shadow", "Of which shadow (calibration sampling)",
                      escape(usd_text(report.shadow_cost_usd, places))
                      + (f" + {shadow_unpriced:,} unpriced" if shadow_unpriced else ""),
                      f"{report.shadow_attempts:,} calls"))  # fmt: skip
    if board.amortised is not None:
        cards.append(("amortised", "Spend, GPUs amortised",
                      escape(usd_text(board.amortised.amortised_cost_usd, places)),
                      "reserved fleet cost spread over its calls"))  # fmt: skip
    html = "".join(
        f'<div class="card" id="headline-{key}">{escape(name)}'
        f'<span class="value">{value}</span><span class="sub">{escape(sub)}</span></div>'
        for key, name, value, sub in cards
    )
    note = f'<p class="note">{escape(counterfactual_note(board.top_tier))}</p>'
    return f'<div class="cards">{html}</div>{note}'


def _unpriced(count: int, what: str) -> str:
    return f"; {count:,} {what} unpriced, left out" if count else ""


def _alerts(board: Dashboard, places: int) -> str:
    items = []
    if not board.report.prices_complete:
        items.append(
            "Some rows have no known price: the sums leave them out (they are not counted as $0)."
        )
    for s in board.budgets:
        for t in s.alerts:
            items.append(
                f"Team {s.team} reached {t.threshold:.0%} of its {s.period} budget of "
                f"{usd_text(s.limit_usd, places)} on {t.reached_on} "
                f"(spent {usd_text(s.spent_usd, places)} so far)."
            )
        if s.forecast_usd > s.limit_usd and s.period == "month":
            items.append(
                f"Team {s.team} is forecast to spend {usd_text(s.forecast_usd, places)} this "
                f"month, over its budget of {usd_text(s.limit_usd, places)}."
            )
    if not items:
        return ""
    body = "".join(f"<li>{escape(i)}</li>" for i in items)
    return f'<div class="alerts" id="alerts"><b>Alerts</b><ul>{body}</ul></div>'


def _figure(chart_id: str, caption: str, body: str) -> str:
    return (
        f'<figure class="chart" id="chart-{chart_id}" data-chart="{chart_id}">'
        f"<figcaption>{escape(caption)}</figcaption>{body}</figure>"
    )


def _tip(column: str, name: str, value: float) -> str:
    return f"{column} {name}: {usd_text(Decimal(str(value)), 4)}"


def _charts(board: Dashboard) -> str:
    report = board.report
    return "".join(
        (
            _figure("spend-by-team", f"Spend by team per {board.grain}", _team_chart(board)),
            _figure("spend-by-tier", f"Spend per day by tier (days in {report.tz})",
                    _tier_chart(report)),
            _figure("savings", "Spend against the frontier-only counterfactual, per day",
                    _savings_chart(report)),
            *([_figure("budget-burn", "Budget burn-down: spend so far as a share of each "
                       "monthly budget (dashed: forecast)", _burn_chart(board))]
              if any(s.period == "month" for s in board.budgets) else []),
            _figure("escalation-by-skill", "Escalation rate by skill", _escalation_chart(report)),
            _figure("cost-quality", "Cost per route against labelled accuracy, per skill",
                    _quality_chart(report)),
        )
    )  # fmt: skip


def _team_chart(board: Dashboard) -> str:
    label = f"stacked bars of spend per {board.grain} by team"
    over = board.team_over_time
    if over is None:  # a bare CostReport: the window's spend per team
        groups = board.report.breakdowns.get("team", [])
        rows = [(g.key, float(g.cost_usd), f"{g.key}: {usd_text(g.cost_usd, 4)}")
                for g in groups if g.cost_usd > 0]  # fmt: skip
        return charts.hbars(rows, label, fmt=charts.usd_tick)
    series = [
        (team, [float(c.cost_usd) if (c := over.cell(team, col)) else 0.0 for col in over.cols])
        for team in over.rows
    ]
    return charts.stacked_bars(over.cols, series, label, tip=_tip)


def _tier_chart(report: CostReport) -> str:
    label = "stacked bars of spend per day by tier"
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in report.spend_by_day_tier:
        spend[row.day, row.tier] += row.cost_usd
    days = sorted({day for day, _ in spend})
    tiers = sorted({tier for _, tier in spend})
    series = [(t, [float(spend.get((d, t), 0)) for d in days]) for t in tiers]
    return charts.stacked_bars(days, series, label, tip=_tip)


def _savings_chart(report: CostReport) -> str:
    label = "spend and frontier-only counterfactual per day"
    groups = report.breakdowns.get("day") or ([report.totals] if report.routes else [])
    series = [
        ("spend", [float(g.cost_usd) for g in groups]),
        ("frontier-only", [float(g.counterfactual_cost_usd) for g in groups]),
    ]
    return charts.grouped_bars([g.key for g in groups], series, label, tip=_tip)


def _burn_chart(board: Dashboard) -> str:
    monthly = [s for s in board.budgets if s.period == "month" and s.limit_usd > 0]
    start = min(s.period_start for s in monthly)
    end = max(s.period_end for s in monthly)
    days = [(start.date().fromordinal(o)).isoformat()
            for o in range(start.date().toordinal(), end.date().toordinal())]  # fmt: skip
    series: list[tuple[str, list[float | None]]] = []
    forecasts: dict[str, list[float | None]] = {}
    for s in monthly:
        burn = dict(s.burn)
        series.append((s.team, [float(burn[d] / s.limit_usd) if d in burn else None
                                for d in days]))  # fmt: skip
        if s.burn and s.burn[-1][0] in days and s.as_of < s.period_end:
            forecast: list[float | None] = [None] * len(days)
            forecast[days.index(s.burn[-1][0])] = float(s.burn[-1][1] / s.limit_usd)
            forecast[-1] = float(s.forecast_usd / s.limit_usd)
            forecasts[s.team] = forecast
    thresholds = sorted({float(t.threshold) for s in monthly for t in s.thresholds})
    rules = [(t, f"{t:.0%}") for t in thresholds]
    return charts.lines(days, series, "budget burn-down, share of each monthly budget",
                        rules=rules, forecasts=forecasts)  # fmt: skip


def _escalation_chart(report: CostReport) -> str:
    groups = [g for g in report.breakdowns.get("skill", []) if g.escalation_rate is not None]
    rows = [(g.key, g.escalation_rate or 0.0, f"{g.key}: {tables.percent(g.escalation_rate)} "
             f"of {g.routes} routes") for g in groups[:20]]  # fmt: skip
    return charts.hbars(rows, "escalation rate per skill", fmt=charts.percent_tick, top=1.0)


def _quality_chart(report: CostReport) -> str:
    points = [
        (g.key, float(g.cost_usd) / g.routes, g.accuracy or 0.0,
         f"{g.key}: {usd_text(g.cost_usd / g.routes, 6)}/route, "
         f"{tables.percent(g.accuracy)} correct")
        for g in report.breakdowns.get("skill", [])
        if g.accuracy is not None and g.routes
    ]  # fmt: skip
    return charts.scatter(points, "cost per route against accuracy per skill",
                          x_title="cost per route")  # fmt: skip


def _reasons(report: CostReport) -> str:
    out = ""
    if report.top_escalation_reasons:
        out += tables.table(
            "escalation-reasons",
            "Top escalation reasons",
            ["reason", "count"],
            [[escape(r.reason), f"{r.count:,}"] for r in report.top_escalation_reasons],
        )
    if report.verifiers:
        out += tables.table(
            "verifiers",
            "Verifier pass rates",
            ["verifier", "verdicts", "pass rate"],
            [[escape(v.verifier), f"{v.verdicts:,}", tables.percent(v.pass_rate)]
             for v in report.verifiers],
        )  # fmt: skip
    return out
