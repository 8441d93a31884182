"""``paxis replay``: recorded outcomes through the real Router; quality and cost.

Tiers are ReplayWorkers serving the data's recorded answers (priced as the policy's tiers), with
the policy's real verifiers and predicates and a real SQLite ledger (a temporary one unless
``--ledger``). ``--curve`` also sweeps the policy's learned scorer over the data (APGR, CPT).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._output import emit, emit_json

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis replay``."""
    parser = sub.add_parser(
        "replay",
        help="replay recorded outcomes through the Router: accuracy, escalations, $ per 1,000",
        description=__doc__,
    )
    parser.add_argument("--policy", type=Path, required=True, metavar="POLICY.yaml")
    parser.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE")
    parser.add_argument("--weak", default=None, help="the worker's model (default: tier 1's)")
    parser.add_argument("--strong", default=None, help="the top model (default: tier 2's)")
    parser.add_argument("--curve", action="store_true", help="also APGR, CPT(50%%), CPT(80%%)")
    parser.add_argument("--ledger", type=Path, default=None, help="keep the ledger at this path")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Replay and print the report."""
    from paxis_router.calibration.datasets import load_examples
    from paxis_router.config.calibrated import replay
    from paxis_router.config.schema import load_config

    cfg = load_config(args.policy)
    examples = load_examples(args.data)
    report = replay(
        cfg,
        examples,
        weak=args.weak,
        strong=args.strong,
        ledger_path=args.ledger,
        curve=args.curve,
    )
    data = report.to_dict(curve=args.curve)
    if args.json:
        emit_json(data)
        return 0
    for key, value in data.items():
        emit(f"{key}: {value}")
    return 0
