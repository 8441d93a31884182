"""The HTML report's tables (private to ``html.py``): breakdowns, cross-tabs, budgets, fleets.

Every table sits in a ``div.table-wrap`` that scrolls sideways on its own, so a wide cross-tab
never widens the page. Money is quantised for display (``money.usd_text``) with the page's one
number of places; the exact figures are in the JSON, CSV and spreadsheet exports.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from paxis_router.reports.money import savings_share, usd_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.reports.budget_view import BudgetStatus
    from paxis_router.reports.cost_report import GroupStats
    from paxis_router.reports.fleet import AmortisedView
    from paxis_router.reports.pivot import Pivot


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def table(
    table_id: str,
    caption: str,
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    text: Sequence[int] = (),
) -> str:
    """A table whose cells are already escaped HTML; the first column heads the rows, the
    columns in ``text`` are left-aligned words, the others right-aligned figures."""

    def cls(i: int) -> str:
        return "" if i == 0 or i in text else " class=num"

    head_html = "".join(f'<th scope="col"{cls(i)}>{escape(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>"
        + "".join(
            f'<th scope="row">{c}</th>' if i == 0 else f"<td{cls(i)}>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table-wrap"><table id="{escape(table_id)}">'
        f"<caption>{escape(caption)}</caption><thead><tr>{head_html}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def saved_text(cost: Decimal, counterfactual: Decimal, places: int) -> str:
    """Savings as an amount and a share; negative savings say that routing cost more."""
    saved = counterfactual - cost
    share = savings_share(cost, counterfactual)
    if saved < 0:
        more = f" ({-share:.1%} more)" if share is not None else ""
        return f'<span class="negative">costs {usd_text(-saved, places)} more{more}</span>'
    return usd_text(saved, places) + (f" ({share:.1%})" if share is not None else "")


def money_cell(value: Decimal, unknown: int, places: int) -> str:
    """An amount, with ``+N unpriced`` when some rows had no known price (not counted as $0)."""
    text = escape(usd_text(value, places))
    return f'{text} <span class="unpriced">+{unknown} unpriced</span>' if unknown else text


def breakdown(dimension: str, groups: Sequence[GroupStats], places: int) -> str:
    head = [dimension, "spend", "frontier-only", "saved", "routes", "attempts",
            "escalated", "latency p50 / p95", "accuracy"]  # fmt: skip
    rows = []
    for g in groups:
        latency = (
            "n/a"
            if g.latency_p50_s is None or g.latency_p95_s is None
            else f"{g.latency_p50_s:.2f} s / {g.latency_p95_s:.2f} s"
        )
        accuracy = f"{percent(g.accuracy)} of {g.labelled_routes}" if g.labelled_routes else "n/a"
        rows.append(
            [
                escape(g.key),
                money_cell(g.cost_usd, g.unknown_cost_attempts, places),
                money_cell(g.counterfactual_cost_usd, g.unknown_counterfactual_routes, places),
                saved_text(g.cost_usd, g.counterfactual_cost_usd, places),
                f"{g.routes:,}",
                f"{g.attempts:,}",
                percent(g.escalation_rate),
                latency,
                accuracy,
            ]
        )
    slug = dimension.replace(":", "-")
    return table(f"by-{slug}", f"Spend and savings by {dimension}", head, rows)


def crosstab(tab: Pivot, places: int) -> str:
    """Spend in each (row, column) cell, with row and column totals and each row's savings."""
    row_totals, col_totals = tab.row_totals(), tab.col_totals()
    head = [f"{tab.row_dim} \\ {tab.col_dim}", *tab.cols, "total", "saved"]
    rows = []
    for r in tab.rows:
        cells = []
        for c in tab.cols:
            stats = tab.cell(r, c)
            cells.append("" if stats is None else escape(usd_text(stats.cost_usd, places)))
        total = row_totals[r]
        rows.append(
            [escape(r), *cells, f"<b>{escape(usd_text(total.cost_usd, places))}</b>",
             saved_text(total.cost_usd, total.counterfactual_cost_usd, places)]
        )  # fmt: skip
    overlap = tab.row_dim == "tool" or tab.col_dim == "tool"
    if not overlap:
        grand_cost = sum((t.cost_usd for t in row_totals.values()), Decimal(0))
        grand_cf = sum((t.counterfactual_cost_usd for t in row_totals.values()), Decimal(0))
        rows.append(
            [
                "<b>total</b>",
                *(f"<b>{escape(usd_text(col_totals[c].cost_usd, places))}</b>" for c in tab.cols),
                f"<b>{escape(usd_text(grand_cost, places))}</b>",
                saved_text(grand_cost, grand_cf, places),
            ]
        )
    return table(
        f"crosstab-{tab.row_dim}-{tab.col_dim}".replace(":", "-"),
        f"Spend by {tab.row_dim} × {tab.col_dim}",
        head,
        rows,
    )


def budgets(statuses: Sequence[BudgetStatus], places: int) -> str:
    head = ["team", "period", "limit", "spent", "used", "remaining", "forecast at period end",
            "alerts reached", "when spent"]  # fmt: skip
    rows = []
    for s in statuses:
        period = f"{s.period} from {s.period_start.date().isoformat()}"
        reached = ", ".join(f"{t.threshold:.0%} on {t.reached_on}" for t in s.alerts) or "none"
        over = s.forecast_usd > s.limit_usd
        forecast = f"{usd_text(s.forecast_usd, places)} ({percent(s.forecast_share)})"
        rows.append(
            [
                escape(s.team),
                escape(period),
                escape(usd_text(s.limit_usd, places)),
                escape(usd_text(s.spent_usd, places)),
                percent(s.used_share),
                escape(usd_text(s.remaining_usd, places)),
                f'<span class="negative">{escape(forecast)}</span>' if over else escape(forecast),
                escape(reached),
                escape(s.on_exhausted),
            ]
        )
    return table("budgets", "Budget against actual", head, rows, text=(1, 7, 8))


def fleet(view: AmortisedView, places: int) -> str:
    head = ["tier", "GPUs", "$/GPU-hour", "reserved GPU-h", "used GPU-h", "utilisation",
            "amortised cost", "marginal cost (ledger)", "idle cost", "amortised $/attempt",
            "marginal $/attempt"]  # fmt: skip
    rows = [
        [
            escape(f.tier),
            str(f.gpus),
            escape(usd_text(f.usd_per_gpu_hour, 2)),
            f"{f.reserved_gpu_hours:,.1f}",
            f"{f.used_gpu_hours:,.2f}",
            percent(f.utilisation),
            escape(usd_text(f.amortised_cost_usd, places)),
            escape(usd_text(f.marginal_cost_usd, places)),
            escape(usd_text(f.idle_cost_usd, places)),
            escape(_per(f.amortised_usd_per_attempt)),
            escape(_per(f.marginal_usd_per_attempt)),
        ]
        for f in view.fleets
    ]
    out = table("fleet", "Reserved GPUs: amortised beside marginal", head, rows)
    if view.teams:
        team_rows = [
            [
                escape(t.team),
                escape(usd_text(t.marginal_cost_usd, places)),
                escape(usd_text(t.amortised_cost_usd, places)),
                saved_text(t.marginal_cost_usd, t.counterfactual_cost_usd, places),
                saved_text(t.amortised_cost_usd, t.counterfactual_cost_usd, places),
            ]
            for t in view.teams
        ]
        out += table(
            "fleet-teams",
            "Spend by team, marginal and with the fleet amortised",
            ["team", "marginal spend", "amortised spend", "saved (marginal)", "saved (amortised)"],
            team_rows,
        )
    return out


def _per(value: Decimal | None) -> str:
    return "n/a" if value is None else usd_text(value, 6)
