"""The report as a spreadsheet (``paxis report --format xlsx -o report.xlsx``).

Needs openpyxl (``pip install 'paxis-router[reports]'``), imported here only. One sheet per
view: ``Summary`` (the headline figures), one ``By <dimension>`` sheet per breakdown, one per
cross-tab (spend per cell, with row totals), ``Budgets`` and ``GPU fleet`` when the policy gives
them. Money cells are numbers at full precision (the ledger's 1e-10 USD, not rounded) shown as
``$#,##0.0000``; an unknown amount is an empty cell, never 0.

Example:
    >>> import tempfile, pathlib, io
    >>> from openpyxl import load_workbook
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> from paxis_router.reports.dashboard import build_dashboard
    >>> board = build_dashboard(SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "l.db"))
    >>> load_workbook(io.BytesIO(dashboard_xlsx(board))).sheetnames[:2]
    ['Summary', 'By team']
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from openpyxl.worksheet.worksheet import Worksheet

    from paxis_router.reports.dashboard import Dashboard

MONEY = "$#,##0.0000"
PERCENT = "0.0%"
_BREAKDOWN = (
    ("routes", "routes", None),
    ("attempts", "attempts", None),
    ("spend_usd", "cost_usd", MONEY),
    ("unpriced_attempts", "unknown_cost_attempts", None),
    ("frontier_only_usd", "counterfactual_cost_usd", MONEY),
    ("saved_usd", "savings_usd", MONEY),
    ("escalation_rate", "escalation_rate", PERCENT),
    ("accuracy", "accuracy", PERCENT),
)


def dashboard_xlsx(board: Dashboard) -> bytes:
    """The workbook's bytes.

    Raises:
        ConfigError: openpyxl is not installed (the message says how to install it).
    """
    try:
        from openpyxl import Workbook
    except ImportError as exc:
        raise ConfigError(
            "--format xlsx needs openpyxl: pip install 'paxis-router[reports]'"
        ) from exc
    book = Workbook()
    summary = book.active
    assert summary is not None  # a new workbook always has its first sheet
    summary.title = "Summary"
    report = board.report
    _rows(
        summary,
        ["figure", "value"],
        [
            ["since", report.since.isoformat() if report.since else ""],
            ["until", report.until.isoformat() if report.until else ""],
            ["time zone", report.tz],
            ["filter", ", ".join(f"{k}={v}" for k, v in report.where.items())],
            ["spend_usd", report.total_cost_usd],
            ["unpriced_attempts", report.unknown_cost_attempts],
            ["frontier_only_usd", report.counterfactual_cost_usd],
            ["saved_usd", report.savings_usd],
            ["routes", report.routes],
            ["attempts", report.attempts],
            ["escalation_rate", report.escalation_rate],
            ["accuracy", report.accuracy],
        ],
        {5: MONEY, 7: MONEY, 8: MONEY},
    )
    for dim, groups in report.breakdowns.items():
        sheet = book.create_sheet(_title(f"By {dim}"))
        _rows(
            sheet,
            [dim, *(name for name, _, _ in _BREAKDOWN)],
            [[g.key, *(getattr(g, attr) for _, attr, _ in _BREAKDOWN)] for g in groups],
            {i + 2: fmt for i, (_, _, fmt) in enumerate(_BREAKDOWN) if fmt},
        )
    for tab in board.crosstabs:
        sheet = book.create_sheet(_title(f"{tab.row_dim} x {tab.col_dim}"))
        totals = tab.row_totals()
        rows = [
            [r, *((c.cost_usd if (c := tab.cell(r, col)) else None) for col in tab.cols),
             totals[r].cost_usd]
            for r in tab.rows
        ]  # fmt: skip
        width = len(tab.cols) + 2
        _rows(sheet, [f"{tab.row_dim} \\ {tab.col_dim}", *tab.cols, "total"], rows,
              dict.fromkeys(range(2, width + 1), MONEY))  # fmt: skip
    if board.budgets:
        sheet = book.create_sheet("Budgets")
        _rows(
            sheet,
            ["team", "period", "period_start", "limit_usd", "spent_usd", "remaining_usd",
             "forecast_usd", "alerts_reached"],
            [[s.team, s.period, s.period_start.date().isoformat(), s.limit_usd, s.spent_usd,
              s.remaining_usd, s.forecast_usd,
              ", ".join(f"{t.threshold:.0%} on {t.reached_on}" for t in s.alerts)]
             for s in board.budgets],
            {4: MONEY, 5: MONEY, 6: MONEY, 7: MONEY},
        )  # fmt: skip
    if board.amortised is not None:
        sheet = book.create_sheet("GPU fleet")
        _rows(
            sheet,
            ["tier", "gpus", "usd_per_gpu_hour", "reserved_gpu_hours", "used_gpu_hours",
             "utilisation", "amortised_cost_usd", "marginal_cost_usd", "idle_cost_usd"],
            [[f.tier, f.gpus, f.usd_per_gpu_hour, f.reserved_gpu_hours, f.used_gpu_hours,
              f.utilisation, f.amortised_cost_usd, f.marginal_cost_usd, f.idle_cost_usd]
             for f in board.amortised.fleets],
            {3: MONEY, 6: PERCENT, 7: MONEY, 8: MONEY, 9: MONEY},
        )  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _title(text: str) -> str:
    """A valid sheet title: at most 31 characters, none of ``[]:*?/\\``."""
    for bad in "[]:*?/\\":
        text = text.replace(bad, " ")
    return text[:31]


def _rows(
    sheet: Worksheet,
    head: Sequence[str],
    rows: Sequence[Sequence[object]],
    formats: dict[int, str],
) -> None:
    """Write a header and rows; ``formats``: 1-based column -> number format."""
    sheet.append(list(head))
    for row in rows:
        sheet.append(list(row))
    for column, fmt in formats.items():
        for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
            cell.number_format = fmt
    sheet.freeze_panes = "B2"
    from openpyxl.utils import get_column_letter

    for index, column_cells in enumerate(sheet.columns, start=1):
        width = max(len(str(c.value or "")) for c in column_cells)
        sheet.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 10), 60)
