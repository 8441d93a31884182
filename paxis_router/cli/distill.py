"""``paxis distill export``: the ledger's verified routes as SFT / DPO / GKD JSONL + a data card."""

from __future__ import annotations

import argparse
from pathlib import Path

from paxis_router.cli._dates import since_arg, until_arg
from paxis_router.cli._output import emit, emit_json
from paxis_router.errors import ConfigError

DEFAULT_LEDGER = "paxis-ledger.db"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis distill`` and its ``export`` subcommand."""
    parser = sub.add_parser(
        "distill",
        help="export training data (SFT, DPO, GKD) from the ledger",
        description="Turn the ledger's verified routes into training data for the worker.",
        epilog="examples:\n  paxis distill export --kind sft\n"
        "  paxis distill export --kind dpo --skill invoices --since 2026-11-01 -o dpo-data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="distill_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write train.jsonl, eval.jsonl and a data card",
        description="Export verified routes (recorded with SQLiteLedger(store_content=True)) "
        "as JSONL: sft (chat messages), dpo (prompt/chosen/rejected pairs where both exist) or "
        "gkd (prompts only). PII is redacted; prompts are de-duplicated; the train/eval split "
        "is a hash of the normalised prompt.",
    )
    export.add_argument(
        "--ledger", default=DEFAULT_LEDGER, help=f"SQLite ledger path (default: {DEFAULT_LEDGER})"
    )
    export.add_argument(
        "--kind",
        required=True,
        choices=("sft", "dpo", "gkd"),
        help="sft: chat messages of verified answers; dpo: chosen/rejected pairs; gkd: prompts",
    )
    export.add_argument("--skill", default=None, help="only routes that selected this skill id")
    export.add_argument("--since", type=since_arg, default=None, help="first day/instant (UTC)")
    export.add_argument(
        "--until", type=until_arg, default=None, help="last day included, or first instant excluded"
    )
    export.add_argument(
        "--eval-percent", type=int, default=10, help="share of prompts held out (default 10)"
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("paxis-distill"),
        metavar="DIR",
        help="output folder (default: paxis-distill)",
    )
    export.add_argument("--json", action="store_true", help="print the data card as JSON")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``paxis distill export``."""
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.training.distill import export

    location = Path(args.ledger)
    if not location.exists():
        raise ConfigError(f"no ledger at {location}; give --ledger PATH (a SQLite ledger)")
    with SQLiteLedger(location, read_only=True) as ledger:
        card = export(
            ledger,
            args.output,
            kind=args.kind,
            skill=args.skill,
            since=args.since,
            until=args.until,
            eval_percent=args.eval_percent,
        )
    if args.json:
        emit_json(card.to_json())
        return 0
    emit(
        f"wrote {card.rows_train} train + {card.rows_eval} eval {card.kind} rows to "
        f"{args.output} (cost of the routes: ${card.cost_usd}; left out: "
        f"{sum(card.dropped.values())})"
    )
    return 0
