"""``paxis report``: the cost report of a ledger, as a table, Markdown, CSV, JSON, HTML, a
spreadsheet, or one CSV row per attempt."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._dates import since_arg
from paxis_router.cli._output import emit
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from paxis_router.reports.cost_report import CostReport
    from paxis_router.reports.settings import ReportSettings

FORMATS = ("table", "markdown", "csv", "json", "html", "xlsx", "line-items")
GRAINS = ("day", "week", "month")
DEFAULT_LEDGER = "paxis-ledger.db"
DEFAULT_CROSSTABS = ("team:skill", "team:month")
# The HTML page and the spreadsheet need these breakdowns whatever --by says.
_PAGE_NEEDS = ("team", "skill", "tier", "day")

_EPILOG = """examples:
  paxis report --since 2026-11-01 --until 2026-11-30 --by team,skill
  paxis report --format html -o report.html --policy policy.yaml --tz Europe/Paris
  paxis report --format xlsx -o report.xlsx --grain week --crosstab team:tag:project
  paxis report --format line-items -o attempts.csv --where tag:cost_centre=cc-7
  paxis report --by tag:user,tool --where tag:project=apollo --format json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis report``."""
    parser = sub.add_parser(
        "report",
        help="cost report of a ledger (spend, savings, budgets, escalations, quality)",
        description="Aggregate a ledger into a cost report: spend, the frontier-only "
        "counterfactual and savings, escalation rate and reasons, verifier pass rates, latency "
        "and labelled accuracy, broken down by team, skill, tier, model, day, data_class, task, "
        "tool or tag:<key>; the HTML page and the spreadsheet add spend by team over time, "
        "cross-tabs, budgets against actual and the amortised GPU view. The ledger is opened "
        "read-only: nothing is created or migrated.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ledger",
        default=DEFAULT_LEDGER,
        metavar="PATH_OR_URL",
        help=f"SQLite path or postgresql:// URL (default: {DEFAULT_LEDGER})",
    )
    parser.add_argument(
        "--since",
        type=_instant,
        default=None,
        metavar="DATE",
        help="first day (2026-11-01: its midnight in --tz) or ISO instant "
        "(2026-11-01T08:00:00+00:00) included; default: the first row",
    )
    parser.add_argument(
        "--until",
        type=_instant,
        default=None,
        metavar="DATE",
        help="last day included (2026-11-30, up to its end in --tz), or the first instant "
        "excluded (an ISO datetime); default: no end",
    )
    parser.add_argument(
        "--tz",
        default=None,
        metavar="ZONE",
        help="IANA time zone whose midnights cut days, e.g. Europe/Paris or America/New_York "
        "(default: UTC); also how --since and --until dates are read",
    )
    parser.add_argument(
        "--by",
        default="team,skill,tier,model,day",
        metavar="DIMENSIONS",
        help="breakdowns, comma-separated, from: team, skill, tier, model, day, data_class, "
        "task, tool (an attempt that called two tools counts, whole, in both), tag:KEY (e.g. "
        "tag:project, tag:user, tag:cost_centre); default: team,skill,tier,model,day",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="DIMENSION=VALUE",
        help="keep only these attempts, e.g. tag:project=apollo, team=claims or tool=search "
        "(repeat: all must hold; VALUE (none) for attempts without one)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default), markdown, csv (one row per breakdown row), json, html (one "
        "self-contained page with charts), xlsx (a sheet per view; needs openpyxl and -o), "
        "line-items (CSV, one row per attempt; columns in docs/reports.md)",
    )
    parser.add_argument(
        "--grain",
        choices=GRAINS,
        default="day",
        help="html and xlsx: the period of the spend-by-team chart (default: day)",
    )
    parser.add_argument(
        "--crosstab",
        action="append",
        default=None,
        metavar="CROSSTAB",
        help="html and xlsx: a cross-tab of spend given as ROWS:COLS, rows a dimension, columns "
        "a dimension or "
        "day, week or month, e.g. team:skill, team:month, tag:project:tier (repeat; default: "
        "team:skill and team:month)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="html and xlsx: the router's policy file, for its budgets (budget against "
        "actual, forecast, alerts), its reports.fleet (amortised GPUs) and its top tier",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="FILE", help="write to this file"
    )
    parser.set_defaults(handler=run)


def _instant(text: str) -> str:
    """Validate a date or an ISO datetime now; it is read in --tz later."""
    since_arg(text)
    return text


def bound(text: str | None, tz: str | None, *, end: bool) -> datetime | None:
    """A --since/--until value as an aware instant: a date is its local midnight in ``tz``
    (``end``: the midnight after it); a naive datetime is read in ``tz`` too.

    Example:
        >>> bound("2026-11-30", "Europe/Paris", end=True).isoformat()
        '2026-11-30T23:00:00+00:00'
    """
    from paxis_router.reports.pivot import zone

    if text is None:
        return None
    local = zone(tz)
    value = datetime.fromisoformat(text)
    if len(text) == 10:
        value += timedelta(days=1) if end else timedelta()
    if value.tzinfo is None:
        value = value.replace(tzinfo=local)
    return value.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis report``."""
    from paxis_router.ledger import open_ledger
    from paxis_router.reports.pivot import zone

    zone(args.tz)  # an unknown zone fails before the ledger is opened
    by = [d.strip() for d in args.by.split(",") if d.strip()]
    where = parse_where(args.where)
    since = bound(args.since, args.tz, end=False)
    until = bound(args.until, args.tz, end=True)
    if args.format == "xlsx" and args.output is None:
        raise ConfigError("--format xlsx writes a binary file: give -o FILE, e.g. report.xlsx")
    settings = _settings(args.policy)
    crosstabs = [parse_crosstab(c) for c in (args.crosstab or DEFAULT_CROSSTABS)]
    location = str(args.ledger)
    if "://" not in location and not Path(location).exists():
        raise ConfigError(f"no ledger at {location}; give --ledger PATH or a postgresql:// URL")
    ledger = open_ledger(location, read_only=True)  # a report never writes or migrates
    try:
        output: str | bytes
        if args.format == "line-items":
            from paxis_router.reports.line_items import line_items_csv

            output = line_items_csv(ledger, since=since, until=until, where=where, tz=args.tz)
        elif args.format in ("html", "xlsx"):
            from paxis_router.reports.dashboard import build_dashboard

            board = build_dashboard(
                ledger, since=since, until=until, where=where, tz=args.tz,
                by=[*by, *(d for d in _PAGE_NEEDS if d not in by)], grain=args.grain,
                crosstabs=crosstabs, settings=settings,
            )  # fmt: skip
            if args.format == "html":
                output = board.to_html()
            else:
                from paxis_router.reports.xlsx import dashboard_xlsx

                output = dashboard_xlsx(board)
        else:
            from paxis_router.reports import cost_report as report

            built = report.build(ledger, since=since, until=until, by=by, where=where, tz=args.tz)
            output = render(built, args.format)
    finally:
        ledger.close()
    if args.output is not None:
        if isinstance(output, bytes):
            args.output.write_bytes(output)
        else:
            args.output.write_text(output, encoding="utf-8")
        emit(f"wrote {args.format} report to {args.output}")
    else:
        assert isinstance(output, str)  # xlsx needs -o (checked above)
        emit(output.rstrip("\n"))
    return 0


def parse_where(items: list[str]) -> dict[str, str]:
    """``["tag:project=apollo", ...]`` -> ``{"tag:project": "apollo"}``; ConfigError names a bad
    item."""
    out: dict[str, str] = {}
    for item in items:
        dimension, sep, value = item.partition("=")
        if not sep or not dimension.strip() or not value:
            raise ConfigError(f"--where {item!r}: give DIMENSION=VALUE, e.g. tag:project=apollo")
        out[dimension.strip()] = value
    return out


def parse_crosstab(item: str) -> tuple[str, str]:
    """``team:skill`` -> ``("team", "skill")``; ``tag:project:month`` -> ``("tag:project",
    "month")``; ``team:tag:user`` -> ``("team", "tag:user")``.

    Example:
        >>> parse_crosstab("tag:project:tag:user")
        ('tag:project', 'tag:user')
    """
    parts = item.split(":")
    names, i = [], 0
    while i < len(parts):
        if parts[i] == "tag" and i + 1 < len(parts):
            names.append(f"tag:{parts[i + 1]}")
            i += 2
        else:
            names.append(parts[i])
            i += 1
    if len(names) != 2 or not all(names):
        raise ConfigError(f"--crosstab {item!r}: give ROWS:COLS, e.g. team:skill or team:month")
    return names[0], names[1]


def _settings(policy: Path | None) -> ReportSettings | None:
    """Budgets, fleets and the top tier from the router's policy file."""
    if policy is None:
        return None
    from paxis_router.config.schema import load_config
    from paxis_router.reports.settings import ReportSettings

    cfg = load_config(policy)
    tiers = [t.model_dump() for t in cfg.tiers]
    return ReportSettings.from_sections(cfg.budgets, cfg.reports, tiers=tiers, source=str(policy))


def render(built: CostReport, fmt: str) -> str:
    """The report as text in ``fmt`` (table, markdown, csv, json or html)."""
    if fmt == "json":
        return built.to_json() + "\n"
    if fmt == "csv":
        return built.to_csv()
    if fmt == "html":
        return built.to_html()
    if fmt == "markdown":
        return built.to_markdown() + "\n"
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None)
    for table in built.to_rich():
        console.print(table)
    return buffer.getvalue()
