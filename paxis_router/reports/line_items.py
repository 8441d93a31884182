"""Line items: one CSV row per attempt, for a spreadsheet or a finance system to import.

``paxis report --format line-items`` writes them; one SQL statement over the window's attempt
rows (the ``where`` filter as ``cost_report.build``'s), in time order. The columns (``COLUMNS``,
then one ``tag:<key>`` column per tag key present in the window, sorted):

========================  =================================================================
``ts``                    the attempt's start, ISO 8601 UTC (``2026-11-05T09:30:00.000000Z``)
``local_date``            its date in the report's time zone (``--tz``; UTC by default)
``route_id``              the route (a route's attempts share it)
``request_id``            the caller's request id
``attempt_index``         0 for the first tier tried, 1 for the next ...
``team``                  the team from the request metadata (empty: none)
``skill``                 the route's top skill (empty: none)
``data_class``            the request's data class (empty: none)
``tier`` / ``model``      the tier that answered and its model
``decision``              ``accept``, ``escalate``, ``stop``, ``shadow``...
``final``                 1 on the attempt that ended its route, else 0
``passed``                1 the verifiers passed it, 0 they rejected it, empty: not verified
``prompt_tokens`` ...     ``completion_tokens``, ``cached_prompt_tokens``, ``reasoning_tokens``
``latency_s``             seconds the attempt took
``cost_usd``              its cost, exact (the ledger's 1e-10 USD); EMPTY when the price is
                          unknown, never 0
``counterfactual_usd``    on a route's final attempt: the route's tokens at the top tier's
                          prices (empty elsewhere, or unknown)
``budget_capped``         1 when a spent budget stopped the route's escalation
``task_id`` / ``step``    the orchestrator task and step (empty for plain routes)
``tools``                 the tools the answer called, ``;``-separated, in call order
``tag:<key>``             the value of that tag (user, project, cost centre, API key...)
========================  =================================================================

Example:
    >>> import tempfile, pathlib
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> line_items_csv(SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "l.db")).splitlines()[0][:40]
    'ts,local_date,route_id,request_id,attemp'
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ConfigError
from paxis_router.ledger.schema import format_ts, parse_ts, ticks_to_usd
from paxis_router.reports import _report_sql as _sql
from paxis_router.reports.cost_report import DIMENSIONS, _valid_dimension
from paxis_router.reports.pivot import zone

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from paxis_router.reports.cost_report import LedgerSource

COLUMNS: tuple[str, ...] = (
    "ts", "local_date", "route_id", "request_id", "attempt_index", "team", "skill",
    "data_class", "tier", "model", "decision", "final", "passed", "prompt_tokens",
    "completion_tokens", "cached_prompt_tokens", "reasoning_tokens", "latency_s", "cost_usd",
    "counterfactual_usd", "budget_capped", "task_id", "step", "tools",
)  # fmt: skip
_SELECT = (
    "a.ts, a.route_id, a.request_id, a.attempt_index, a.team, a.skill, a.data_class, a.tier, "
    "a.model, a.decision, a.final, a.passed, a.prompt_tokens, a.completion_tokens, "
    "a.cached_prompt_tokens, a.reasoning_tokens, a.latency_s, a.cost_ticks, "
    "a.counterfactual_ticks, a.budget_capped, a.task_id, a.step, a.tools, a.tags"
)


def line_items_csv(
    ledger: LedgerSource,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    tz: str | None = None,
) -> str:
    """Every attempt in ``[since, until)`` matching ``where``, as CSV (see the module docstring).

    Raises:
        ConfigError: an unknown zone or filter dimension.
    """
    local = zone(tz)
    clauses: list[str] = []
    params: list[Any] = []  # Any: DB-API parameters
    if since is not None:
        clauses.append("a.ts >= ?")
        params.append(format_ts(since))
    if until is not None:
        clauses.append("a.ts < ?")
        params.append(format_ts(until))
    if where:
        unknown = [d for d in where if not _valid_dimension(d)]
        if unknown:
            raise ConfigError(f"unknown filter dimension(s) {unknown}; expected "
                              f"{', '.join(DIMENSIONS)} or tag:<key>")  # fmt: skip
        for name in where:
            if name.startswith("tag:"):
                _sql.check_tag(name.removeprefix("tag:"))
        condition, extra = _sql.where_sql(ledger.dialect, where)
        clauses.append(condition)
        params += extra
    condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = ledger.query(
        f"SELECT {_SELECT} FROM attempts a{condition} ORDER BY a.ts, a.route_id, a.attempt_index",
        params,
    )
    tagged = [_tags(row[-1]) for row in rows]
    keys = sorted({k for tags in tagged for k in tags})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *(f"tag:{k}" for k in keys)])
    for row, tags in zip(rows, tagged, strict=True):
        ts = str(row[0])
        (_, route_id, request_id, attempt, team, skill, data_class, tier, model, decision,
         final, passed, p_tok, c_tok, cached, reasoning, latency, cost, cf, capped, task, step,
         tools, _) = row  # fmt: skip
        writer.writerow(
            [
                ts,
                parse_ts(ts).astimezone(local).date().isoformat(),
                route_id,
                request_id,
                attempt,
                team or "",
                _top_skill(skill),
                data_class or "",
                tier,
                model,
                decision,
                int(bool(final)),
                "" if passed is None else int(bool(passed)),
                p_tok or 0,
                c_tok or 0,
                cached or 0,
                reasoning or 0,
                "" if latency is None else latency,
                _usd(cost),
                _usd(cf),
                int(bool(capped)),
                task or "",
                "" if step is None else step,
                ";".join(_list(tools)),
                *(tags.get(k, "") for k in keys),
            ]
        )
    return out.getvalue()


def _usd(ticks: object) -> str:
    value = ticks_to_usd(None if ticks is None else int(str(ticks)))
    return "" if value is None else format(value.normalize(), "f")


def _top_skill(skill: object) -> str:
    return "" if not skill else str(skill).split(",", 1)[0]


def _list(value: object) -> list[str]:
    if value is None:
        return []
    parsed = json.loads(value) if isinstance(value, str) else value
    return [str(v) for v in parsed] if isinstance(parsed, list) else []


def _tags(value: object) -> dict[str, str]:
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
