"""``paxis replay``: recorded outcomes through the real Router; quality and cost.

Tiers are ReplayWorkers serving the data's recorded answers (priced as the policy's tiers), with
the policy's real verifiers and predicates and a real SQLite ledger (a temporary one unless
``--ledger``). ``--curve`` also sweeps the policy's learned scorer over the data (APGR, CPT).

A policy written by ``paxis calibrate`` records the rows it was fitted on (``fitted_on:``).
Replaying any of them is refused: a policy scores its own training rows far better than new
ones, so the figures would be in-sample. ``--exclude-fitted`` replays only the other rows;
``--allow-in-sample`` replays everything and labels the result in-sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from paxis_router.cli._output import emit, emit_json, plain


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis replay``."""
    parser = sub.add_parser(
        "replay",
        help="replay recorded outcomes through the Router: accuracy, escalations, $ per 1,000",
        description=plain(__doc__),
        epilog="examples:\n"
        "  paxis replay --policy policy.yaml --data policy.holdout.jsonl --curve\n"
        "  paxis replay --policy policy.yaml --data gsm8k_responses.csv --exclude-fitted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--policy",
        type=Path,
        required=True,
        metavar="POLICY",
        help="a policy YAML (from paxis calibrate, or written by hand)",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="recorded outcomes to replay (RouteLLM CSVs or the generic JSONL)",
    )
    parser.add_argument("--weak", default=None, help="the worker's model (default: tier 1's)")
    parser.add_argument("--strong", default=None, help="the top model (default: tier 2's)")
    parser.add_argument("--curve", action="store_true", help="also APGR, CPT(50%%), CPT(80%%)")
    parser.add_argument("--ledger", type=Path, default=None, help="keep the ledger at this path")
    fitted = parser.add_mutually_exclusive_group()
    fitted.add_argument(
        "--exclude-fitted",
        action="store_true",
        help="drop the rows the policy was fitted on and replay the rest (held out)",
    )
    fitted.add_argument(
        "--allow-in-sample",
        action="store_true",
        help="replay rows the policy was fitted on too; the result is labelled in-sample",
    )
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
        allow_in_sample=args.allow_in_sample,
        exclude_fitted=args.exclude_fitted,
    )
    data = report.to_dict(curve=args.curve)
    if args.json:
        emit_json(data)
        return 0
    if report.in_sample:
        emit(
            f"IN-SAMPLE: {report.in_sample_rows} of {report.n} rows were fitted on; these "
            "figures overstate what the policy does on new data"
        )
    for key, value in data.items():
        emit(f"{key}: {value}")
    return 0
