"""CostReport -> one self-contained HTML file with inline SVG charts (private to report.py).

No script, no stylesheet link, no external URL: the charts are SVG drawn here, so the file opens
offline and can be mailed as is.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from paxis_router.reports.text import markdown, money, percent, shadow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.reports.cost_report import CostReport, GroupStats

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#718096")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a202c; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #cbd5e0; border-radius: 6px; padding: .6rem 1rem; }
.card b { display: block; font-size: 1.3rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(660px, 1fr)); gap: 1rem; }
figure.chart { border: 1px solid #e2e8f0; border-radius: 6px; margin: 0; padding: .5rem; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
svg text { font-size: 11px; fill: #2d3748; }
.warning { color: #c53030; font-weight: 600; }
pre { background: #f7fafc; padding: 1rem; overflow-x: auto; }
"""


def render_html(report: CostReport) -> str:
    """The whole page."""
    cards = [
        ("Spend", money(report.total_cost_usd, report.unknown_cost_attempts)),
        *(
            [("Of which shadow (calibration sampling)", shadow(report))]
            if report.shadow_attempts
            else []
        ),
        (
            "Frontier-only",
            money(report.counterfactual_cost_usd, report.unknown_counterfactual_routes),
        ),
        (
            "Saved",
            "n/a"
            if report.savings_ratio is None
            else f"${report.savings_usd:.2f} ({report.savings_ratio:.1f}×)",
        ),
        ("Routes", f"{report.routes} ({report.attempts} attempts)"),
        ("Escalation rate", percent(report.escalation_rate)),
        ("Accuracy (labelled)", percent(report.accuracy)),
    ]
    card_html = "".join(
        f'<div class="card">{escape(name)}<b>{escape(value)}</b></div>' for name, value in cards
    )
    warning = (
        ""
        if report.prices_complete
        else '<p class="warning">Some rows have no known price: the sums leave them out '
        "(they are not counted as $0).</p>"
    )
    charts = "".join(
        (
            _figure("spend-by-tier", "Spend over time by tier", _spend_by_tier(report)),
            _figure("savings", "Spend against the frontier-only counterfactual", _savings(report)),
            _figure("escalation-by-skill", "Escalation rate by skill", _escalation(report)),
            _figure("cost-quality", "Cost per route against labelled accuracy, per skill",
                    _cost_quality(report)),
        )
    )  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'
        f"<title>paxis cost report</title><style>{_STYLE}</style></head><body>"
        f"<h1>Cost report</h1><p>Generated {escape(report.generated_at.isoformat())}</p>"
        f'<div class="cards">{card_html}</div>{warning}<div class="charts">{charts}</div>'
        f"<h2>Details</h2><pre>{escape(markdown(report))}</pre></body></html>\n"
    )


def _figure(chart_id: str, caption: str, svg: str) -> str:
    return (
        f'<figure class="chart" id="chart-{chart_id}" data-chart="{chart_id}">'
        f"<figcaption>{escape(caption)}</figcaption>{svg}</figure>"
    )


def _svg(body: str, label: str) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">{body}</svg>'
    )


def _empty(label: str) -> str:
    return _svg(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>', label
    )


def _axes(y_max: float, fmt: str) -> str:
    """The y axis with 4 gridlines labelled with ``fmt`` (a format spec)."""
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#4a5568"/>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="#4a5568"/>',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = HEIGHT - BOTTOM - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#edf2f7"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{format(value, fmt)}</text>'
        )
    return "".join(parts)


def _legend(names: Sequence[str]) -> str:
    parts = []
    for i, name in enumerate(names):
        x = LEFT + i * 130
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 7}">{escape(name[:18])}</text>'
        )
    return "".join(parts)


def _x_label(x: float, text: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{escape(text)}</text>'
    )


def _bar(x: float, y: float, w: float, h: float, color: str, tip: str, cls: str = "bar") -> str:
    return (
        f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(h, 0.0):.1f}" '
        f'fill="{color}"><title>{escape(tip)}</title></rect>'
    )


def _spend_by_tier(report: CostReport) -> str:
    label = "stacked bars of spend per day by tier"
    if not report.spend_by_day_tier:
        return _empty(label)
    days = sorted({row.day for row in report.spend_by_day_tier})
    tiers = sorted({row.tier for row in report.spend_by_day_tier})
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in report.spend_by_day_tier:
        spend[row.day, row.tier] += row.cost_usd
    totals = [sum((spend[d, t] for t in tiers), Decimal(0)) for d in days]
    y_max = float(max(totals)) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(days)
    parts = [_axes(y_max, ".4f")]
    for i, day in enumerate(days):
        base = float(HEIGHT - BOTTOM)
        x = LEFT + i * slot + slot * 0.15
        for j, tier in enumerate(tiers):
            h = float(spend[day, tier]) / y_max * plot_h
            base -= h
            parts.append(
                _bar(x, base, slot * 0.7, h, PALETTE[j % len(PALETTE)],
                     f"{day} {tier}: ${spend[day, tier]:.4f}")
            )  # fmt: skip
        parts.append(_x_label(x + slot * 0.35, day[5:]))
    parts.append(_legend(tiers))
    return _svg("".join(parts), label)


def _savings(report: CostReport) -> str:
    label = "spend and frontier-only counterfactual per day"
    groups: Sequence[GroupStats] = report.breakdowns.get("day") or (
        [report.totals] if report.routes else []
    )
    if not groups:
        return _empty(label)
    y_max = float(max(max(g.cost_usd, g.counterfactual_cost_usd) for g in groups)) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(groups)
    parts = [_axes(y_max, ".4f")]
    for i, g in enumerate(groups):
        x = LEFT + i * slot + slot * 0.1
        for j, (name, value) in enumerate(
            (("spend", g.cost_usd), ("frontier-only", g.counterfactual_cost_usd))
        ):
            h = float(value) / y_max * plot_h
            parts.append(
                _bar(x + j * slot * 0.4, HEIGHT - BOTTOM - h, slot * 0.38, h, PALETTE[j],
                     f"{g.key} {name}: ${value:.4f}")
            )  # fmt: skip
        parts.append(_x_label(x + slot * 0.4, g.key[5:] if len(g.key) == 10 else g.key))
    parts.append(_legend(["spend", "frontier-only"]))
    return _svg("".join(parts), label)


def _escalation(report: CostReport) -> str:
    label = "escalation rate per skill"
    groups = [g for g in report.breakdowns.get("skill", []) if g.escalation_rate is not None]
    if not groups:
        return _empty(label)
    groups = groups[:12]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(groups)
    parts = [_axes(1.0, ".0%")]
    for i, g in enumerate(groups):
        rate = g.escalation_rate or 0.0
        h = rate * plot_h
        x = LEFT + i * slot + slot * 0.15
        parts.append(
            _bar(x, HEIGHT - BOTTOM - h, slot * 0.7, h, PALETTE[1],
                 f"{g.key}: {rate:.1%} of {g.routes} routes")
        )  # fmt: skip
        parts.append(_x_label(x + slot * 0.35, g.key[:14]))
    return _svg("".join(parts), label)


def _cost_quality(report: CostReport) -> str:
    label = "cost per route against accuracy per skill"
    groups = [g for g in report.breakdowns.get("skill", []) if g.accuracy is not None and g.routes]
    if not groups:
        return _empty(label)
    costs = [float(g.cost_usd) / g.routes for g in groups]
    x_max = max(costs) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [_axes(1.0, ".0%")]
    for i, (g, cost) in enumerate(zip(groups, costs, strict=True)):
        x = LEFT + cost / x_max * plot_w * 0.95
        y = HEIGHT - BOTTOM - (g.accuracy or 0.0) * plot_h
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="6" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(g.key)}: ${cost:.5f}/route, '
            f"{percent(g.accuracy)} correct</title></circle>"
            f'<text x="{x + 8:.1f}" y="{y - 6:.1f}">{escape(g.key[:16])}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - BOTTOM + 28}" text-anchor="end">'
        f"cost per route, $ (max {x_max:.5f})</text>"
    )
    return _svg("".join(parts), label)
