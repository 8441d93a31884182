"""The SQL behind ``pivot`` and ``cost_report.build``'s local-midnight days (private).

A dimension's key over attempt rows, a time bucket (the UTC day, or the UTC hour / quarter-hour
put on its local day for a zone other than UTC), and the two statements: from the daily rollups
(``rollup_sql``) or from the window's attempt rows (``raw_sql``). Rows come back as
``(row key, column bucket, *counts)``, counts in ``rollup.DIM_COUNTS`` order.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from paxis_router.errors import ConfigError
from paxis_router.ledger import rollup
from paxis_router.ledger.schema import format_ts
from paxis_router.reports import _report_sql as _sql

if TYPE_CHECKING:
    from collections.abc import Mapping

TIME_GRAINS = ("day", "week", "month")
ALL = "all"
_COUNTS = rollup.DIM_COUNTS


def zone(name: str | None) -> tzinfo:
    """The time zone called ``name`` (IANA, e.g. ``Europe/Paris``); None or ``UTC``: UTC.

    Raises:
        ConfigError: an unknown zone name.

    Example:
        >>> zone("Europe/Paris").utcoffset(datetime(2026, 7, 1))
        datetime.timedelta(seconds=7200)
    """
    if name is None or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r}; give an IANA name such as Europe/Paris"
        ) from exc


# --- SQL ------------------------------------------------------------------------------------------


def _sums(dialect: str) -> str:
    return ", ".join(f"SUM({e})" for e in _sql._row_counts(dialect))


def _key(dialect: str, dim: str) -> tuple[str, str, str, list[Any]]:
    """(key expression over attempt alias ``a``, FROM-clause tail, WHERE condition, parameters
    of the key expression) of ``dim``; Any: DB-API parameters."""
    keys = rollup.raw_dim_keys(dialect)
    if dim == ALL:
        return f"'{ALL}'", "", "1 = 1", []
    if dim in keys:
        return keys[dim], "", "1 = 1", []
    if dim == rollup.TOOL:
        join, tool, condition = rollup.tool_join(dialect)
        return tool, join, condition, []
    path = _sql.tag_path(dialect, dim.removeprefix(rollup.TAG_PREFIX))
    return f"COALESCE({_sql.tag_value(dialect)}, '{rollup.NONE}')", "", "1 = 1", [path]


def _time_key(zone_info: tzinfo) -> str:
    """The UTC bucket a time column is built from: the day, or (a local zone) the hour, or the
    quarter-hour for zones whose offsets are not whole hours."""
    if zone_info is UTC:
        return "SUBSTR(a.ts, 1, 10)"
    if _whole_hours(zone_info):
        return "SUBSTR(a.ts, 1, 13)"
    return "SUBSTR(a.ts, 1, 14) || CAST((CAST(SUBSTR(a.ts, 15, 2) AS INTEGER) / 15) * 15 AS TEXT)"


def _whole_hours(zone_info: tzinfo) -> bool:
    probes = (datetime(y, m, 1, tzinfo=UTC) for y in range(1990, 2041) for m in (1, 7))
    return all(
        not ((zone_info.utcoffset(p.astimezone(zone_info)) or timedelta()) % timedelta(hours=1))
        for p in probes
    )


def _bounds(since: datetime | None, until: datetime | None) -> tuple[list[str], list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("a.ts >= ?")
        params.append(format_ts(since))
    if until is not None:
        clauses.append("a.ts < ?")
        params.append(format_ts(until))
    return clauses, params


def raw_sql(
    dialect: str,
    rows: str,
    cols: str,
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str],
    zone_info: tzinfo,
) -> tuple[str, list[Any]]:  # Any: DB-API parameters
    row_key, row_join, row_cond, row_params = _key(dialect, rows)
    col_params: list[Any]  # Any: DB-API parameters
    if cols in TIME_GRAINS:
        col_key, col_join, col_cond, col_params = _time_key(zone_info), "", "1 = 1", []
    else:
        col_key, col_join, col_cond, col_params = _key(dialect, cols)
    clauses, params = _bounds(since, until)
    if filters:
        filter_sql, filter_params = _sql.where_sql(dialect, filters)
        clauses.append(filter_sql)
        params += filter_params
    where = " AND ".join([*clauses, row_cond, col_cond])
    sql = (
        f"SELECT {row_key}, {col_key}, {_sums(dialect)} FROM attempts a{row_join}{col_join} "
        f"WHERE {where} GROUP BY 1, 2"
    )
    return sql, [*row_params, *col_params, *params]


def rollup_sql(
    dialect: str, rows: str, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:  # Any: DB-API parameters
    """Whole days from ``rollup_dims``, partial days from the rows; a tag also reads the totals
    (key NULL), its ``(none)`` group being the totals less the tagged groups."""
    window = _sql.Window.of(since, until, None)
    plain = ", ".join(f"SUM({c})" for c in _COUNTS)
    arms: list[tuple[str, list[Any]]] = []
    tagged = rows.startswith(rollup.TAG_PREFIX)
    specs = [(rows, False)] + ([(ALL, True)] if tagged else [])
    for dim, hidden in specs:
        rollup_dim = rollup.TOTAL_DIM if dim == ALL else dim
        label = "NULL" if hidden else (f"'{ALL}'" if dim == ALL else "key")
        if window.day_clause is not None:
            arms.append(
                (
                    f"SELECT {label}, day, {plain} FROM rollup_dims WHERE dim = ? AND "
                    f"{window.day_clause} GROUP BY 1, 2",
                    [rollup_dim, *window.day_params],
                )
            )
        for clause, range_params in window.ranges:
            key, join, condition, key_params = _key(dialect, dim)
            if hidden:
                key, key_params = "NULL", []
            elif dim.startswith(rollup.TAG_PREFIX):
                key = _sql.tag_value(dialect)
                condition = f"{key} IS NOT NULL"
                key_params = [*key_params, *key_params]
            select_params = key_params[:1] if dim.startswith(rollup.TAG_PREFIX) else key_params
            where_params = key_params[1:] if dim.startswith(rollup.TAG_PREFIX) else []
            arms.append(
                (
                    f"SELECT {key}, SUBSTR(a.ts, 1, 10), {_sums(dialect)} FROM attempts a{join} "
                    f"WHERE {clause} AND {condition} GROUP BY 1, 2",
                    [*select_params, *range_params, *where_params],
                )
            )
    if not arms:  # pragma: no cover - a window always has whole days or edges
        return "SELECT NULL, NULL WHERE 1 = 0", []
    return " UNION ALL ".join(sql for sql, _ in arms), [p for _, ps in arms for p in ps]


def column(bucket: str, grain: str, zone_info: tzinfo) -> str:
    """A UTC day / hour / quarter-hour bucket -> the column key in ``grain`` and the zone."""
    if len(bucket) == 10:
        day = date.fromisoformat(bucket)
    else:
        hour = datetime.fromisoformat(bucket[:13] + ":" + (bucket[14:] or "0").zfill(2))
        day = hour.replace(tzinfo=UTC).astimezone(zone_info).date()
    if grain == "day":
        return day.isoformat()
    if grain == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()[:7]
