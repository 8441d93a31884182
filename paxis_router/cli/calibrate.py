"""``paxis calibrate``: fit an escalation policy to a target on labelled outcomes.

Reads RouteLLM's files as they are (GSM8K CSV with responses, MMLU CSVs, MT-Bench judgements)
or the generic JSONL format (see ``paxis_router.calibration.datasets``), fits the learned
escalation scorer
with cross-fitting, picks the threshold that meets the target and writes a policy YAML the
Router loads. Prints the chosen point and the cost/quality curve; the whole frontier goes to
``POLICY.curve.json`` beside the policy.

``--scorer knn`` / ``mix`` fits the embedding-neighbour scorer (alone, or averaged with the
learned one) and writes it beside the policy as ``POLICY.scorer.json`` + ``POLICY.scorer.npz``;
the policy names the JSON file.

With ``--ledger`` it fits on production routes instead: those whose worker answer and strong-tier
answer are both labelled (shadow-sampled routes; escalated ones too with --include-escalated).
``--weak`` / ``--strong`` name tiers or models of the ledger; ``--policy`` is the policy that
produced it (its tiers and verifiers are kept, its ``escalate_when`` replaced).

The policy records the rows it was fitted on (``fitted_on:``, a fingerprint of their prompts):
``paxis replay`` refuses them, since a policy replayed on its own training rows looks better
than it is. ``--holdout 0.5`` fits on half the rows (whole groups with ``--group-folds``) and
writes the other half to ``POLICY.holdout.jsonl`` for ``paxis replay``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._dates import since_arg, until_arg
from paxis_router.cli._output import emit, emit_json, plain

if TYPE_CHECKING:
    from paxis_router.calibration.datasets import Example
    from paxis_router.calibration.thresholds import Calibration

_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
_STRONG = "gpt-4-1106-preview"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis calibrate``."""
    parser = sub.add_parser(
        "calibrate",
        help="fit the escalation policy to a quality, cost or escalation target",
        description=plain(__doc__),
        epilog="examples:\n"
        "  paxis calibrate --data gsm8k_responses.csv --holdout 0.5 -o policy.yaml\n"
        "  paxis calibrate --ledger paxis-ledger.db --weak local:qwen --strong frontier:gpt-4o "
        "-o policy.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="recorded outcomes: RouteLLM CSVs (GSM8K, MMLU, MT-Bench) or the generic JSONL",
    )
    source.add_argument(
        "--ledger", metavar="PATH_OR_URL", help="fit on labelled routes of this ledger"
    )
    parser.add_argument(
        "--weak", default=None, help=f"the worker's model or tier (--data default {_WEAK})"
    )
    parser.add_argument(
        "--strong", default=None, help=f"the top model or tier (--data default {_STRONG})"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--target-quality",
        type=float,
        help="at least this share of the top tier's quality (default 0.95)",
    )
    target.add_argument("--max-usd-per-1k", type=Decimal, help="spend at most $Y per 1,000")
    target.add_argument("--max-escalation", type=float, help="escalate at most this share")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="POLICY",
        help="the policy YAML to write (with its scorer file beside it)",
    )
    parser.add_argument(
        "--verifier",
        choices=("auto", "arithmetic", "none"),
        default="auto",
        help="verifier whose verdicts feed the scorer (auto: arithmetic when answers are recorded)",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default 5)")
    parser.add_argument(
        "--group-folds",
        action="store_true",
        help="hold out whole groups (MMLU subjects) per fold instead of random rows",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the folds and the holdout split (default 0)"
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=None,
        metavar="SHARE",
        help="fit on the other rows and write this share (whole groups with --group-folds) to "
        "POLICY.holdout.jsonl, for an honest paxis replay",
    )
    parser.add_argument(
        "--scorer",
        choices=("learned", "knn", "mix"),
        default="learned",
        help="learned: logistic heads (inline JSON); knn: the nearest training queries' mean "
        "gain (embeddings in POLICY.scorer.npz); mix: the mean of both (default learned)",
    )
    parser.add_argument(
        "--encoder",
        default="minilm",
        help="query embedding for knn/mix: minilm (extra [embed]) or hashed (no model)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    ledger = parser.add_argument_group("with --ledger")
    ledger.add_argument(
        "--policy", type=Path, default=None, help="the policy that produced the ledger"
    )
    ledger.add_argument("--since", type=since_arg, default=None, help="first day/instant (UTC)")
    ledger.add_argument(
        "--until", type=until_arg, default=None, help="last day (included) or first instant after"
    )
    ledger.add_argument("--team", default=None, help="only routes of this team")
    ledger.add_argument("--skill", default=None, help="only routes that selected this skill id")
    ledger.add_argument(
        "--include-escalated",
        action="store_true",
        help="also fit on escalated routes (biased: only those the current policy doubted)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Fit, write the policy and its curve, print the summary."""
    from paxis_router.calibration.datasets import holdout_split, load_examples, write_jsonl
    from paxis_router.calibration.fingerprint import RowFingerprint
    from paxis_router.calibration.thresholds import KnnScorer, calibrate
    from paxis_router.config.calibrated import policy_document, weak_price, write_policy
    from paxis_router.errors import ConfigError
    from paxis_router.pricing import litellm_price
    from paxis_router.verifiers.arithmetic import ArithmeticVerifier

    if args.ledger is not None:
        return _run_ledger(args)
    args.weak = args.weak or _WEAK
    args.strong = args.strong or _STRONG
    examples = load_examples(args.data)
    for model in (args.weak, args.strong):
        if not examples or model not in examples[0].outcomes:
            have = sorted(examples[0].outcomes) if examples else []
            raise ConfigError(f"no outcomes for model {model!r} in the data; models: {have}")
    held_out: list[Example] = []
    if args.holdout is not None:
        examples, held_out = holdout_split(
            examples, args.holdout, by_group=args.group_folds, seed=args.seed
        )
    answered = sum(1 for e in examples if e.outcomes[args.weak].response)
    use_arith = args.verifier == "arithmetic" or (
        args.verifier == "auto" and answered >= len(examples) / 2
    )
    target_quality = _target_quality(args)
    cal = calibrate(
        examples,
        weak=args.weak,
        strong=args.strong,
        target_quality=target_quality,
        max_usd_per_1k=args.max_usd_per_1k,
        max_escalation=args.max_escalation,
        weak_price=weak_price(),
        strong_price=litellm_price(args.strong),
        verifiers=[ArithmeticVerifier()] if use_arith else [],
        folds=args.folds,
        groups=[e.group for e in examples] if args.group_folds else None,
        seed=args.seed,
        scorer=args.scorer,
        encoder=args.encoder,
    )
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    scorer_file = None
    if isinstance(cal.scorer, KnnScorer):  # JSON + .npz beside the policy, named by it
        scorer_path = out.with_suffix(".scorer.json")
        cal.scorer.save(scorer_path)
        scorer_file = str(scorer_path)
    document = policy_document(
        cal,
        data=args.data,
        out_dir=out.parent,
        verifiers=[{"kind": "arithmetic"}] if use_arith else [],
        scorer_file=scorer_file,
        fitted_on=RowFingerprint.of_prompts(e.prompt for e in examples),
    )
    write_policy(out, document, cal)
    holdout = None
    if held_out:
        holdout = write_jsonl(out.with_suffix(".holdout.jsonl"), held_out)
    return _report(args, cal, out, holdout=holdout, held_rows=len(held_out))


def _run_ledger(args: argparse.Namespace) -> int:
    """``--ledger``: fit on labelled production routes, write the policy, print the summary."""
    from paxis_router.calibration import from_ledger as ledger_fit
    from paxis_router.config.calibrated import policy_document, write_policy
    from paxis_router.errors import ConfigError
    from paxis_router.ledger import open_ledger

    if args.scorer != "learned":
        raise ConfigError("--ledger fits the learned scorer only; drop --scorer")
    if args.holdout is not None:
        raise ConfigError("--holdout splits a --data file; a ledger's routes are fitted whole")
    if args.weak is None or args.strong is None:
        raise ConfigError("--ledger needs --weak and --strong: the tiers (or models) to compare")
    location = str(args.ledger)
    if "://" not in location and not Path(location).exists():
        raise ConfigError(f"no ledger at {location}; give --ledger PATH or a postgresql:// URL")
    base = None if args.policy is None else ledger_fit.read_policy(args.policy)
    ledger = open_ledger(location, read_only=True)
    try:
        found = ledger_fit.load_pairs(
            ledger,
            weak=args.weak,
            strong=args.strong,
            since=args.since,
            until=args.until,
            skill=args.skill,
            team=args.team,
            include_escalated=args.include_escalated,
            sample=None if base is None else ledger_fit.sampling_of(base),
        )
    finally:
        ledger.close()
    ledger_fit.check_tiers(found, args.weak, args.strong)
    needed = max(ledger_fit.MIN_PAIRS, 2 * args.folds)
    if len(found.examples) < needed:
        raise ConfigError(
            ledger_fit.too_few(
                found, needed, weak=args.weak, strong=args.strong, escalated=args.include_escalated
            )
        )
    target_quality = _target_quality(args)
    cal = ledger_fit.fit(
        found,
        weak=args.weak,
        strong=args.strong,
        target_quality=target_quality,
        max_usd_per_1k=args.max_usd_per_1k,
        max_escalation=args.max_escalation,
        use_verdicts=base is not None,
        folds=args.folds,
        seed=args.seed,
    )
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    if base is not None:
        document = ledger_fit.policy_from_base(base, cal)
    else:
        document = policy_document(cal, data=[], out_dir=out.parent, verifiers=[])
        cal = replace(
            cal, notes=(*cal.notes, "no --policy: tiers are placeholders, verdicts not used")
        )
    document.pop("fitted_on", None)  # the base policy's, if any, names other rows
    if found.has_text:  # without text there is no prompt to fingerprint
        from paxis_router.calibration.fingerprint import RowFingerprint

        fingerprint = RowFingerprint.of_prompts(e.prompt for e in found.examples)
        document["fitted_on"] = fingerprint.to_dict()
    write_policy(out, document, cal)
    return _report(args, cal, out)


def _report(
    args: argparse.Namespace,
    cal: Calibration,
    out: Path,
    *,
    holdout: Path | None = None,
    held_rows: int = 0,
) -> int:
    """Write the curve beside the policy and print the summary."""
    curve_path = out.with_suffix(".curve.json")
    summary = cal.summary()
    curve_path.write_text(
        json.dumps({**summary, "frontier": [p.to_dict() for p in cal.frontier]}, indent=1) + "\n",
        encoding="utf-8",
    )
    summary = {**summary, "policy": str(out), "curve_file": str(curve_path)}
    if holdout is not None:
        summary = {**summary, "holdout_file": str(holdout), "holdout_rows": held_rows}
    if args.json:
        emit_json(summary)
        return 0
    p = cal.point
    emit(f"wrote {out} (curve: {curve_path})")
    if holdout is not None:
        emit(
            f"held out {held_rows} rows in {holdout}: paxis replay --policy {out} --data {holdout}"
        )
    emit(
        f"{cal.n} examples; weak {cal.curve.weak_quality:.4f}, "
        f"strong {cal.curve.strong_quality:.4f}"
    )
    emit(
        f"chosen: escalate below {p.threshold:.4f}: strong calls {p.strong_call_share:.1%}, "
        f"quality {p.quality:.4f} ({p.quality_share:.1%} of strong), "
        f"${p.usd_per_1k} per 1,000"
    )
    emit(f"APGR {cal.apgr:.3f}  CPT(50%) {cal.cpt50}  CPT(80%) {cal.cpt80}")
    emit("strong-call share  quality  of strong  $/1k")
    for share in [i / 10 for i in range(11)]:
        point = min(cal.frontier, key=lambda q: abs(q.strong_call_share - share))
        emit(
            f"{point.strong_call_share:17.1%}  {point.quality:7.4f}  {point.quality_share:9.1%}"
            f"  {point.usd_per_1k}"
        )
    for note in cal.notes:
        emit(f"note: {note}")
    return 0


def _target_quality(args: argparse.Namespace) -> float | None:
    """The quality target: as given, or 0.95 of the top tier when no target was given at all."""
    if args.target_quality is None and args.max_usd_per_1k is None and args.max_escalation is None:
        return 0.95
    value: float | None = args.target_quality
    return value
