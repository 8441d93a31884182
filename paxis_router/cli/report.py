"""``paxis report``: the cost report of a ledger, as a table, Markdown, CSV, JSON or HTML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._dates import since_arg, until_arg
from paxis_router.cli._output import emit
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    import argparse

    from paxis_router.reports.cost_report import CostReport

FORMATS = ("table", "markdown", "csv", "json", "html")
DEFAULT_LEDGER = "paxis-ledger.db"
# The HTML charts need these breakdowns whatever --by says.
_HTML_NEEDS = ("skill", "day")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis report``."""
    parser = sub.add_parser(
        "report",
        help="cost report of a ledger (spend, savings, escalations, quality)",
        description="Aggregate a ledger into a cost report: spend, the frontier-only "
        "counterfactual and savings, escalation rate and reasons, verifier pass rates, latency "
        "and labelled accuracy, broken down by team, skill, tier, model, day, data_class, task, "
        "tool or tag:<key>. The ledger is opened read-only: nothing is created or migrated.",
    )
    parser.add_argument(
        "--ledger",
        default=DEFAULT_LEDGER,
        help=f"SQLite path or postgresql:// URL (default: {DEFAULT_LEDGER})",
    )
    parser.add_argument(
        "--since", type=since_arg, default=None, help="first day or instant included (UTC)"
    )
    parser.add_argument(
        "--until",
        type=until_arg,
        default=None,
        help="last day included (a date), or the first instant excluded (a datetime); UTC",
    )
    parser.add_argument(
        "--by",
        default="team,skill,tier,model,day",
        help="breakdowns, comma-separated: team, skill, tier, model, day, data_class, task, "
        "tool (an attempt that called two tools counts, whole, in both), tag:<key> "
        "(e.g. tag:project)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="DIMENSION=VALUE",
        help="keep only these attempts, e.g. tag:project=apollo or tool=search (repeat: all "
        "must hold; VALUE (none) for attempts without one)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write to this file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis report``."""
    from paxis_router.ledger import open_ledger
    from paxis_router.reports import cost_report as report

    by = [d.strip() for d in args.by.split(",") if d.strip()]
    where = parse_where(args.where)
    if args.format == "html":
        by += [d for d in _HTML_NEEDS if d not in by]
    location = str(args.ledger)
    if "://" not in location and not Path(location).exists():
        raise ConfigError(f"no ledger at {location}; give --ledger PATH or a postgresql:// URL")
    ledger = open_ledger(location, read_only=True)  # a report never writes or migrates
    try:
        built = report.build(ledger, since=args.since, until=args.until, by=by, where=where)
    finally:
        ledger.close()
    text = render(built, args.format)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        emit(f"wrote {args.format} report to {args.output}")
    else:
        emit(text.rstrip("\n"))
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


def render(built: CostReport, fmt: str) -> str:
    """The report as text in ``fmt`` (one of FORMATS)."""
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
