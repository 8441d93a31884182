"""CostReport -> Markdown and rich tables (private to report.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Decimal

    from rich.table import Table

    from paxis_router.reports.cost_report import CostReport, GroupStats

_GROUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("routes", "routes"),
    ("attempts", "attempts"),
    ("cost", "spend $"),
    ("counterfactual", "frontier-only $"),
    ("savings", "saved"),
    ("escalation", "escalated"),
    ("latency", "latency p50/p95 s"),
    ("accuracy", "accuracy"),
    ("flags", "flags"),
)
_SHADOW_COLUMN = ("shadow", "of which shadow $ (calls)")


def money(value: Decimal, unknown: int = 0) -> str:
    """``$1.2345``, with ``+ N unpriced`` when some rows have no known price."""
    text = f"${value:.4f}"
    return f"{text} + {unknown} unpriced" if unknown else text


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def shadow(group: GroupStats | CostReport) -> str:
    """``$0.0120 (3 calls)``: the shadow calls' spend (calibration sampling) and count."""
    calls = f"{group.shadow_attempts} call{'' if group.shadow_attempts == 1 else 's'}"
    return f"{money(group.shadow_cost_usd, group.shadow_unknown_cost_attempts)} ({calls})"


def _columns(report: CostReport) -> tuple[tuple[str, str], ...]:
    """The breakdown columns; the shadow one only when the window holds shadow calls."""
    if not report.shadow_attempts:
        return _GROUP_COLUMNS
    at = [name for name, _ in _GROUP_COLUMNS].index("cost") + 1
    return (*_GROUP_COLUMNS[:at], _SHADOW_COLUMN, *_GROUP_COLUMNS[at:])


def _cells(group: GroupStats, columns: tuple[tuple[str, str], ...]) -> list[str]:
    savings = "n/a" if group.savings_ratio is None else f"{group.savings_ratio:.1f}×"
    latency = (
        "n/a"
        if group.latency_p50_s is None or group.latency_p95_s is None
        else f"{group.latency_p50_s:.3f} / {group.latency_p95_s:.3f}"
    )
    accuracy = (
        f"{percent(group.accuracy)} of {group.labelled_routes}" if group.labelled_routes else "n/a"
    )
    flags = []
    if group.budget_capped_routes:
        flags.append(f"{group.budget_capped_routes} budget-capped")
    if group.degraded_routes:
        flags.append(f"{group.degraded_routes} degraded")
    cells = {
        "routes": str(group.routes),
        "attempts": str(group.attempts),
        "cost": money(group.cost_usd, group.unknown_cost_attempts),
        "shadow": shadow(group),
        "counterfactual": money(group.counterfactual_cost_usd, group.unknown_counterfactual_routes),
        "savings": f"{savings} (${group.savings_usd:.4f})",
        "escalation": percent(group.escalation_rate),
        "latency": latency,
        "accuracy": accuracy,
        "flags": ", ".join(flags),
    }
    return [cells[name] for name, _ in columns]


def _summary_lines(report: CostReport) -> list[str]:
    window = f"{report.since or 'beginning'} to {report.until or 'now'}"
    lines = [
        f"Window: {window}",
        f"Routes: {report.routes} ({report.attempts} attempts)",
        f"Spend: {money(report.total_cost_usd, report.unknown_cost_attempts)}",
        *(
            [f"Of which shadow (calibration sampling): {shadow(report)}"]
            if report.shadow_attempts
            else []
        ),
        "Frontier-only counterfactual: "
        + money(report.counterfactual_cost_usd, report.unknown_counterfactual_routes),
    ]
    if report.savings_ratio is not None:
        lines.append(f"Saved: ${report.savings_usd:.4f} ({report.savings_ratio:.1f}×)")
    lines.append(f"Escalation rate: {percent(report.escalation_rate)}")
    if not report.prices_complete:
        lines.append(
            "WARNING: some rows have no known price; the sums above leave them out "
            "(they are not counted as $0)."
        )
    if report.budget_capped_routes:
        lines.append(f"Budget-capped routes: {report.budget_capped_routes}")
    return lines


def markdown(report: CostReport) -> str:
    """The report as Markdown."""
    out = ["# Cost report", "", *(f"- {line}" for line in _summary_lines(report)), ""]
    if report.top_escalation_reasons:
        out += ["## Top escalation reasons", "", "| reason | count |", "|---|---:|"]
        out += [f"| {r.reason} | {r.count} |" for r in report.top_escalation_reasons]
        out.append("")
    if report.verifiers:
        out += [
            "## Verifier pass rates",
            "",
            "| verifier | verdicts | pass rate |",
            "|---|---:|---:|",
        ]
        out += [
            f"| {v.verifier} | {v.verdicts} | {percent(v.pass_rate)} |" for v in report.verifiers
        ]
        out.append("")
    columns = _columns(report)
    headers = [title for _, title in columns]
    for dimension, groups in report.breakdowns.items():
        out += [f"## By {dimension}", "", f"| {dimension} | " + " | ".join(headers) + " |"]
        out.append("|---|" + "---:|" * len(headers))
        out += [f"| {g.key} | " + " | ".join(_cells(g, columns)) + " |" for g in groups]
        out.append("")
    return "\n".join(out)


def rich_tables(report: CostReport) -> list[Table]:
    """The report as rich Tables: a summary, then one per breakdown."""
    from rich.table import Table

    summary = Table(title="Cost report", show_header=False)
    summary.add_column("figure")
    for line in _summary_lines(report):
        summary.add_row(line)
    tables = [summary]
    if report.top_escalation_reasons:
        reasons = Table(title="Top escalation reasons")
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        for r in report.top_escalation_reasons:
            reasons.add_row(r.reason, str(r.count))
        tables.append(reasons)
    columns = _columns(report)
    for dimension, groups in report.breakdowns.items():
        table = Table(title=f"By {dimension}")
        table.add_column(dimension)
        for _, title in columns:
            table.add_column(title, justify="right")
        for group in groups:
            table.add_row(group.key, *_cells(group, columns))
        tables.append(table)
    return tables
