"""Two-way figures: a dimension by a time grain (day, week, month) or by another dimension.

``pivot(ledger, "team", "month")`` is spend, savings and routes per team per month;
``pivot(ledger, "team", "skill")`` the team × skill cross-tab. One SQL statement each:

* a dimension by a time grain, in UTC, unfiltered: whole days from the daily rollups
  (``rollup_dims``, one index range scan per dimension, keyed (dim, key, day)), the partial days
  at the window's edges from the attempt rows, as ``cost_report.build`` does; weeks (ISO,
  ``2026-W45``) and months (``2026-11``) are sums of days;
* anything else (two dimensions, a ``where`` filter, or a time zone other than UTC) from the
  window's attempt rows, grouped in the database. With a time zone the rows are grouped by UTC
  hour (quarter-hour for zones with such offsets) and each hour is put on its local day, so days
  are cut at local midnight; the rollups keep UTC days and cannot answer that.

Cells carry the figures of ``GroupStats`` that the counts give (spend, counterfactual, savings,
routes, attempts, escalations, tokens, shadow calls); latency and labels are the one-way
breakdowns' (``cost_report``). ``tool`` groups overlap (an attempt that called two tools counts in
both), so a tool pivot's column sums exceed the column's total by design.

Example:
    >>> import tempfile, pathlib
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> p = pivot(SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "l.db"), "team", "month")
    >>> p.rows, p.cols, p.cells
    ([], [], [])
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from paxis_router.errors import ConfigError
from paxis_router.ledger import rollup
from paxis_router.reports import _pivot_sql as _q, _report_sql as _sql
from paxis_router.reports._pivot_sql import ALL as ALL, TIME_GRAINS as TIME_GRAINS, zone as zone
from paxis_router.reports.cost_report import (
    DIMENSIONS,
    GroupStats,
    LedgerSource,
    _group_stats,
    _valid_dimension,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

_HIDDEN = "\x00all"  # the totals row a tag pivot reads (NULL in SQL), never shown
_COUNTS = rollup.DIM_COUNTS


class PivotCell(BaseModel):
    """The figures of one (row, column) pair."""

    model_config = ConfigDict(frozen=True)

    row: str
    col: str
    stats: GroupStats


class Pivot(BaseModel):
    """Figures by ``rows`` (a dimension, or ``all``) × ``cols`` (a time grain or a dimension).

    ``rows`` and ``cols`` list the keys in order (rows by spend, largest first; time columns in
    time order, other columns by key); ``tz`` is the zone days were cut in.
    """

    model_config = ConfigDict(frozen=True)

    row_dim: str
    col_dim: str
    tz: str
    rows: list[str]
    cols: list[str]
    cells: list[PivotCell]

    def cell(self, row: str, col: str) -> GroupStats | None:
        """The figures of (row, col), or None when no attempt fell there."""
        return self._index().get((row, col))

    def _index(self) -> dict[tuple[str, str], GroupStats]:
        return {(c.row, c.col): c.stats for c in self.cells}

    def row_totals(self) -> dict[str, GroupStats]:
        """Each row summed over its columns (a time grain: the row's total over the window)."""
        return _totals(self.cells, lambda c: c.row)

    def col_totals(self) -> dict[str, GroupStats]:
        """Each column summed over the rows (``tool`` rows overlap: see the module docstring)."""
        return _totals(self.cells, lambda c: c.col)


def pivot(
    ledger: LedgerSource,
    rows: str,
    cols: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    tz: str | None = None,
) -> Pivot:
    """Figures by ``rows`` × ``cols`` over ``[since, until)`` (one SQL statement).

    Args:
        ledger: anything with ``query`` and ``dialect`` (``SQLiteLedger``, ``PostgresLedger``).
        rows: a dimension (``team``, ``skill``, ``tier``, ``model``, ``data_class``, ``task``,
            ``tool``, ``tag:<key>``) or ``all``.
        cols: ``day``, ``week`` or ``month``, or a dimension other than ``rows``.
        since: first instant included (aware); None for the beginning.
        until: first instant excluded (aware); None for no end.
        where: keep only these attempts, as ``cost_report.build``'s ``where``.
        tz: the IANA zone whose midnights cut days (None: UTC).

    Raises:
        ConfigError: an unknown dimension or zone, the same dimension twice.
    """
    zone_info = zone(tz)
    for name, value in (("rows", rows), ("cols", cols)):
        if value != ALL and value not in TIME_GRAINS and not _valid_dimension(value):
            raise ConfigError(
                f"pivot {name}={value!r}: expected {', '.join(DIMENSIONS)}, tag:<key>, "
                f"{', '.join(TIME_GRAINS)} or {ALL}"
            )
    if rows in TIME_GRAINS:
        raise ConfigError(f"pivot rows={rows!r}: put time on the columns (cols={rows!r})")
    if rows == cols or (rows == "day" and cols in TIME_GRAINS):
        raise ConfigError(f"pivot of {rows!r} by itself")
    for name in (rows, cols, *(where or {})):
        if name.startswith(rollup.TAG_PREFIX):
            _sql.check_tag(name.removeprefix(rollup.TAG_PREFIX))
    for bound, instant in (("since", since), ("until", until)):
        if instant is not None and instant.tzinfo is None:
            raise ConfigError(f"pivot {bound}={instant!r} is naive; give an aware datetime")
    filters = dict(where or {})
    timed = cols in TIME_GRAINS
    local = zone_info is not UTC
    if timed and not filters and not local and rows != "day":
        sql, params = _q.rollup_sql(ledger.dialect, rows, since, until)
    else:
        sql, params = _q.raw_sql(ledger.dialect, rows, cols, since, until, filters, zone_info)
    raw_cells: dict[tuple[str, str], list[int]] = {}
    for k1, k2, *values in ledger.query(sql, params):
        col = _q.column(str(k2), cols, zone_info) if timed else str(k2)
        row = _HIDDEN if k1 is None else str(k1)  # NULL: the totals a tag's (none) needs
        counts = raw_cells.setdefault((row, col), [0] * len(_COUNTS))
        for i, v in enumerate(values):
            counts[i] += int(v or 0)
    if rows.startswith(rollup.TAG_PREFIX) and timed and not filters and not local:
        _untagged(raw_cells)
    cells = [
        PivotCell(row=r, col=c, stats=_group_stats(c, dict(zip(_COUNTS, v, strict=True))))
        for (r, c), v in raw_cells.items()
        if v[0] > 0 and r != _HIDDEN
    ]
    spend: dict[str, int] = defaultdict(int)
    for (r, _), v in raw_cells.items():
        spend[r] += v[_COUNTS.index("cost_ticks")]
    row_keys = sorted({c.row for c in cells}, key=lambda r: (-spend[r], r))
    col_keys = sorted({c.col for c in cells})
    cells.sort(key=lambda c: (row_keys.index(c.row), c.col))
    return Pivot(
        row_dim=rows,
        col_dim=cols,
        tz=str(getattr(zone_info, "key", "UTC")),
        rows=row_keys,
        cols=col_keys,
        cells=cells,
    )


def _untagged(cells: dict[tuple[str, str], list[int]]) -> None:
    """A tag's ``(none)`` cells: the totals (row ``_HIDDEN``) less the tagged rows, per column."""
    totals = {c: v for (r, c), v in cells.items() if r == _HIDDEN}
    for col, total in totals.items():
        rest = list(total)
        for (r, c), v in cells.items():
            if c == col and r != _HIDDEN:
                rest = [a - b for a, b in zip(rest, v, strict=True)]
        if rest[0] > 0:
            cells[rollup.NONE, col] = rest
    for col in totals:
        del cells[_HIDDEN, col]


def _totals(cells: list[PivotCell], key: Any) -> dict[str, GroupStats]:  # Any: a key function
    sums: dict[str, dict[str, int]] = {}
    fields = {
        "attempts": "attempts",
        "routes": "routes",
        "escalated": "escalated_routes",
        "unknown_cost": "unknown_cost_attempts",
        "unknown_cf": "unknown_counterfactual_routes",
        "accepted": "accepted_routes",
        "capped": "budget_capped_routes",
        "degraded": "degraded_routes",
        "prompt_tokens": "prompt_tokens",
        "completion_tokens": "completion_tokens",
        "shadow_attempts": "shadow_attempts",
        "shadow_unknown_cost": "shadow_unknown_cost_attempts",
        "cached_prompt_tokens": "cached_prompt_tokens",
        "reasoning_tokens": "reasoning_tokens",
    }
    money = {"cost_ticks": "cost_usd", "cf_ticks": "counterfactual_cost_usd",
             "shadow_ticks": "shadow_cost_usd"}  # fmt: skip
    for c in cells:
        k = key(c)
        acc = sums.setdefault(k, dict.fromkeys(_COUNTS, 0))
        for name, attr in fields.items():
            acc[name] += getattr(c.stats, attr)
        for name, attr in money.items():
            acc[name] += int(getattr(c.stats, attr).scaleb(10))
    return {k: _group_stats(k, v) for k, v in sums.items()}
