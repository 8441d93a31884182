"""``paxis demo``: RouteLLM's recorded GSM8K answers replayed through the real Router, offline.

Tier 1 replays Mixtral-8x7B's real answers (priced as a local GPU worker), tier 2 GPT-4's (priced
from the shipped price map); the arithmetic verifier decides who answers. The demo is public
data, so it shows the whole loop on the ledger the other commands read by default
(``paxis-ledger.db``): every attempt with its prompt and answer, the dataset's correctness label
of each answer (source ``gsm8k``), a fresh hash-chained audit log beside it, and at the end the
commands to run next (``paxis report``, ``paxis audit verify``, ``paxis distill export``).

Money is the ledger's: routed spend is what the attempts cost; "frontier only" is the
counterfactual the router records on each route's final row — what the route's answering tokens
would have cost at the top tier's prices (the only counterfactual a production router can
compute), exactly what ``paxis report`` sums. The dataset-only figure (GPT-4's own recorded
answers to every question) is shown beside it, labelled.

The demo only ever replaces its own files: a ledger holding anything but demo routes, or an
audit log with records of other principals, is refused (pass ``--ledger`` / ``--audit``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import textwrap
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.cli._output import (
    emit,
    emit_json,
    percent_text,
    plain,
    savings_text,
    usd,
    usd_json,
)
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from paxis_router.config.schema import RouterConfig
    from paxis_router.errors import PaxisError
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.reports.cost_report import CostReport
    from paxis_router.router import Router
    from paxis_router.types import RouteResult
    from paxis_router.workers.replay import Outcome, ReplayWorker

DEFAULT_LEDGER = Path("paxis-ledger.db")
"""The ledger ``paxis report``, ``paxis label`` and ``paxis distill export`` read by default."""

DEMO_TEAM = "demo"
LABEL_SOURCE = "gsm8k"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DATA = Path(__file__).resolve().parents[1] / "data"


def default_policy() -> Path:
    """The demo policy shipped inside the package (``paxis_router/data/policies/demo.yaml``)."""
    return _DATA / "policies" / "demo.yaml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis demo``."""
    parser = sub.add_parser(
        "demo",
        help="replay RouteLLM's real GSM8K answers through the router (offline, < 1 min)",
        description=plain(__doc__),
        epilog="examples:\n  paxis demo\n  paxis demo --limit 100 --json\n"
        "  paxis demo --ledger /tmp/demo.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ledger",
        type=Path,
        default=DEFAULT_LEDGER,
        metavar="PATH",
        help=f"the SQLite ledger to write (default: ./{DEFAULT_LEDGER}, the one `paxis report` "
        "reads); an earlier demo ledger there is replaced, any other file is refused",
    )
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="route only the first N questions"
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="a policy with a ladder of `kind: replay` tiers (default: the shipped demo.yaml)",
    )
    parser.add_argument(
        "--gate", type=Path, default=None, metavar="FILE", help="a gate policy file to apply"
    )
    parser.add_argument(
        "--audit",
        type=Path,
        default=None,
        metavar="PATH",
        help="the hash-chained audit log, started afresh with the ledger (default: the file "
        "`paxis audit verify` checks, in the ledger's folder)",
    )
    parser.add_argument(
        "--allow-in-sample",
        action="store_true",
        help="route questions a calibrated --policy was fitted on (refused by default: its "
        "figures would flatter it), labelled in-sample",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class DemoSummary:
    """The demo's figures.

    ``spend_usd``, ``frontier_only_usd`` (the counterfactual), ``routed_accuracy`` and
    ``escalation_rate`` are read back from the ledger with ``paxis report``'s own aggregation;
    ``worker_*`` / ``frontier_accuracy`` / ``frontier_recorded_usd`` come from the dataset alone
    (each model answering every question).
    """

    n: int
    dropped: int
    ledger: Path
    audit: Path
    top_tier: str
    worker_accuracy: float
    frontier_accuracy: float
    routed_accuracy: float | None
    escalation_rate: float | None
    spend_usd: Decimal | None
    frontier_only_usd: Decimal | None
    worker_only_usd: Decimal | None
    frontier_recorded_usd: Decimal | None
    labelled_routes: int
    token_counter: str
    failed_routes: int

    @property
    def savings_usd(self) -> Decimal | None:
        """Frontier-only (the counterfactual) minus routed spend; negative: routing cost more."""
        if self.spend_usd is None or self.frontier_only_usd is None:
            return None
        return self.frontier_only_usd - self.spend_usd

    @property
    def savings_ratio(self) -> float | None:
        """frontier-only / routed spend (how many times cheaper routing is), as the report."""
        if not self.spend_usd or self.frontier_only_usd is None:
            return None
        return float(self.frontier_only_usd / self.spend_usd)

    def to_json(self) -> dict[str, Any]:  # Any: a JSON object
        savings = self.savings_usd
        return {
            "n": self.n,
            "dropped_contaminated": self.dropped,
            "ledger": str(self.ledger),
            "audit_log": str(self.audit),
            "accuracy": {
                "worker_only": round(self.worker_accuracy, 4),
                "frontier_only": round(self.frontier_accuracy, 4),
                "routed": None if self.routed_accuracy is None else round(self.routed_accuracy, 4),
            },
            "labelled_routes": self.labelled_routes,
            "escalation_rate": None
            if self.escalation_rate is None
            else round(self.escalation_rate, 4),
            "spend_usd": usd_json(self.spend_usd),
            "frontier_only_usd": usd_json(self.frontier_only_usd),
            "counterfactual_method": counterfactual_method(self.top_tier),
            "savings_usd": usd_json(savings),
            "savings_percent": None
            if savings is None or not self.frontier_only_usd
            else round(float(savings / self.frontier_only_usd) * 100, 2),
            "savings_ratio": None if self.savings_ratio is None else round(self.savings_ratio, 2),
            "worker_only_usd": usd_json(self.worker_only_usd),
            "frontier_recorded_answers_usd": usd_json(self.frontier_recorded_usd),
            "token_counter": self.token_counter,
            "failed_routes": self.failed_routes,
            "next_commands": [command for command, _ in next_commands(self.ledger, self.audit)],
        }


def next_commands(ledger: Path, audit: Path) -> list[tuple[str, str]]:
    """The commands to run next on the demo's files, with what each shows. Run from the working
    directory, each needs no argument when the ledger and audit log have their default names
    there; otherwise the paths are spelled out."""
    import shlex

    from paxis_router.governance.audit import DEFAULT_AUDIT_PATH

    here = Path.cwd()
    on_ledger = "" if ledger.resolve() == (here / DEFAULT_LEDGER).resolve() else ledger
    on_audit = "" if audit.resolve() == (here / DEFAULT_AUDIT_PATH).resolve() else audit
    ledger_arg = f" --ledger {shlex.quote(str(on_ledger))}" if on_ledger else ""
    audit_arg = f" {shlex.quote(str(on_audit))}" if on_audit else ""
    return [
        (f"paxis report{ledger_arg}", "the cost report: spend, savings, escalations, accuracy"),
        (
            f"paxis report{ledger_arg} --format html -o report.html",
            "the same report as a page with charts",
        ),
        (f"paxis audit verify{audit_arg}", "check the audit log's hash chain"),
        (
            f"paxis distill export{ledger_arg} --kind sft",
            "the verified answers as training data for the worker",
        ),
    ]


def counterfactual_method(top_tier: str) -> str:
    """One sentence saying how the frontier-only figure is computed."""
    return (
        f"what each route's answering tokens would have cost at the top tier's prices "
        f"({top_tier}); recorded by the router on each route's final ledger row and summed by "
        "`paxis report`"
    )


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis demo``."""
    import asyncio

    from paxis_router.config.calibrated import check_held_out
    from paxis_router.config.schema import AuditSpec, load_config
    from paxis_router.governance.audit import DEFAULT_AUDIT_PATH
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.types import ChatRequest, Message
    from paxis_router.workers.replay import REPLAY_ID_KEY

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1", field="--limit")
    policy_path: Path = args.policy or default_policy()
    cfg = load_config(policy_path)
    ledger_path: Path = args.ledger
    audit_path: Path = args.audit or ledger_path.parent / DEFAULT_AUDIT_PATH
    demo_tiers = {spec.tier_name for spec in cfg.tiers}
    # Check both files before removing either: a refusal leaves everything as it was.
    _check_replaceable_ledger(ledger_path, demo_tiers)
    _check_replaceable_audit(audit_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger_path}{suffix}").unlink(missing_ok=True)
    for suffix in ("", ".checkpoints"):  # a keyed log's signed checkpoints go with it
        Path(f"{audit_path}{suffix}").unlink(missing_ok=True)

    update: dict[str, object] = {
        "ledger": None,  # the demo opens its own, with content stored (below)
        "audit": AuditSpec(path=audit_path, fsync=False),  # a demo: no fsync per record
    }
    if args.gate is not None:
        from paxis_router.governance.gate import load_gate_policy

        update["gate"] = load_gate_policy(args.gate)
    ledger = SQLiteLedger(ledger_path, store_content=True)
    router: Router | None = None
    try:
        router, workers, counter = _demo_router(cfg.model_copy(update=update), ledger, policy_path)
        prompts, dropped = _questions(cfg, workers[0])
        ids = sorted(workers[0].outcomes, key=_id_order)[: args.limit]
        # A calibrated policy scores the rows it was fitted on better than any new one.
        overlap = check_held_out(
            cfg, [prompts[i] for i in ids], allow_in_sample=args.allow_in_sample
        )
        requests = [
            ChatRequest(
                messages=(Message(role="user", content=prompts[i]),),
                metadata={"team": DEMO_TEAM, REPLAY_ID_KEY: i},
                request_id=f"gsm8k-{i}",  # the ledger row says which question it answered
            )
            for i in ids
        ]
        if not args.json:
            emit(f"paxis demo: routing {len(requests)} GSM8K questions with {policy_path}")
        results = asyncio.run(
            router.route_many(requests, progress=not args.json, description="routing GSM8K")
        )
        _write_labels(ledger, ids, results, workers)
    finally:
        opened = (*router.sinks, router.audit) if router is not None else ()
        for sink in (*opened, ledger):
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    summary = summarise(
        ids,
        results,
        workers,
        ledger=ledger_path.resolve(),
        audit=audit_path.resolve(),
        dropped=dropped,
        token_counter=counter,
    )
    in_sample = overlap.fitted if overlap is not None and overlap.in_sample else 0
    if args.json:
        emit_json({**summary.to_json(), "in_sample_rows": in_sample})
    else:
        if in_sample:
            emit(f"IN-SAMPLE: {overlap.describe() if overlap else ''}; these figures flatter it")
        _print_summary(summary, workers)
    return 0


def _id_order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 62, key)


def _demo_router(
    cfg: RouterConfig, ledger: SQLiteLedger, policy_path: Path
) -> tuple[Router, list[ReplayWorker], str]:
    """The policy's Router with the demo's ledger (content stored) and, for the shipped GSM8K
    data, the token counts recorded beside it (so the figures do not depend on tiktoken)."""
    from paxis_router.router import Router
    from paxis_router.workers.replay import ReplayWorker, token_counter_name

    built = Router.from_config(cfg)
    tiers = list(built.tiers)
    replayed = [t.worker for t in tiers if isinstance(t.worker, ReplayWorker)]
    if len(tiers) < 2 or len(replayed) != len(tiers):
        raise ConfigError(
            "the demo needs a ladder of at least two `kind: replay` tiers", source=str(policy_path)
        )
    counter = token_counter_name()
    recorded = _recorded_tokens(cfg)
    if recorded is not None:
        pairs = zip(tiers, replayed, strict=True)
        tiers = [replace(t, worker=_with_tokens(w, recorded)) for t, w in pairs]
        counter = "tiktoken:cl100k_base (recorded in gsm8k_tokens.csv)"
    router = Router(
        tiers=tiers,
        verifiers=built.verifiers,
        policy=built.policy,
        ledger=ledger,
        skills=built.skills,
        skills_k=built.skills_k,
        gate=built.gate,
        audit=built.audit,
        outage=built.outage,
    )
    workers = [t.worker for t in router.tiers if isinstance(t.worker, ReplayWorker)]
    return router, workers, counter


def _recorded_tokens(cfg: RouterConfig) -> dict[str, dict[str, int]] | None:
    """``gsm8k_tokens.csv`` beside the first tier's data file: {column: {row id: tokens}}."""
    from paxis_router.config.schema import ReplayTierSpec

    spec = cfg.tiers[0]
    if not isinstance(spec, ReplayTierSpec):
        return None
    path = (cfg.base_dir / spec.data).with_name("gsm8k_tokens.csv")
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in reader.fieldnames or [] if c != "row"]
        counts: dict[str, dict[str, int]] = {c: {} for c in columns}
        for row in reader:
            for column in columns:
                counts[column][row["row"]] = int(row[column])
    return counts


def _with_tokens(worker: ReplayWorker, recorded: dict[str, dict[str, int]]) -> ReplayWorker:
    """The same replay worker with each outcome's token counts taken from ``recorded``."""
    from paxis_router.workers.replay import ReplayWorker

    prompts, answers = recorded.get("prompt", {}), recorded.get(f"{worker.model}_response", {})

    def counted(key: str, outcome: Outcome) -> Outcome:
        if key not in prompts or key not in answers:
            return outcome
        return replace(outcome, prompt_tokens=prompts[key], completion_tokens=answers[key])

    return ReplayWorker(
        worker.name,
        {k: counted(k, o) for k, o in worker.outcomes.items()},
        model=worker.model,
        price=worker.price,
        destination=worker.destination,
    )


def _questions(cfg: RouterConfig, worker: ReplayWorker) -> tuple[dict[str, str], int]:
    from paxis_router.config.schema import ReplayTierSpec
    from paxis_router.workers.replay import routellm_prompts

    spec = cfg.tiers[0]
    assert isinstance(spec, ReplayTierSpec)
    prompts = routellm_prompts(cfg.base_dir / spec.data)
    return prompts, len(prompts) - len(worker.outcomes)


def _write_labels(
    ledger: SQLiteLedger,
    ids: list[str],
    results: list[RouteResult | PaxisError],
    workers: list[ReplayWorker],
) -> None:
    """The dataset's correctness labels (source ``gsm8k``): of each route's answer, and of each
    attempt that answered (what calibration and DPO read)."""
    from paxis_router.types import RouteResult

    by_name = {w.name: w for w in workers}
    for key, result in zip(ids, results, strict=True):
        if not isinstance(result, RouteResult):
            continue
        for index, attempt in enumerate(result.attempts):
            worker = by_name.get(attempt.tier)
            correct = None if worker is None else worker.outcome(key).correct
            if attempt.completion is not None and correct is not None:
                ledger.label(
                    result.route_id, correct=correct, source=LABEL_SOURCE, attempt_index=index
                )
        answered = by_name[result.tier].outcome(key).correct
        if answered is not None:
            ledger.label(result.route_id, correct=answered, source=LABEL_SOURCE)


def _ledger_report(ledger: Path) -> CostReport:
    from paxis_router.ledger import open_ledger
    from paxis_router.reports.cost_report import build

    opened = open_ledger(ledger)
    try:
        return build(opened, by=())
    finally:
        opened.close()


def summarise(
    ids: list[str],
    results: list[RouteResult | PaxisError],
    workers: list[ReplayWorker],
    *,
    ledger: Path,
    audit: Path,
    dropped: int,
    token_counter: str,
) -> DemoSummary:
    """The demo's figures: the ledger's, aggregated as ``paxis report`` does, and the dataset's."""
    from paxis_router.pricing import cost_or_none
    from paxis_router.types import RouteResult

    report = _ledger_report(ledger)
    worker, frontier = workers[0], workers[-1]
    n = len(ids)
    failed = sum(not isinstance(r, RouteResult) for r in results)

    def only(w: ReplayWorker) -> tuple[float, Decimal | None]:
        right = sum(bool(w.outcome(k).correct) for k in ids)
        total: Decimal | None = Decimal(0)
        for k in ids:
            cost = cost_or_none(w.price, w.outcome(k).usage, 0.0)
            total = None if total is None or cost is None else total + cost
        return right / n if n else 0.0, total

    worker_acc, worker_usd = only(worker)
    frontier_acc, frontier_usd = only(frontier)
    return DemoSummary(
        n=n,
        dropped=dropped,
        ledger=ledger,
        audit=audit,
        top_tier=frontier.name,
        worker_accuracy=worker_acc,
        frontier_accuracy=frontier_acc,
        routed_accuracy=report.accuracy,
        escalation_rate=report.escalation_rate,
        spend_usd=None if report.unknown_cost_attempts else report.total_cost_usd,
        frontier_only_usd=None
        if report.unknown_counterfactual_routes
        else report.counterfactual_cost_usd,
        worker_only_usd=worker_usd,
        frontier_recorded_usd=frontier_usd,
        labelled_routes=report.labelled_routes,
        token_counter=token_counter,
        failed_routes=failed,
    )


def _print_summary(s: DemoSummary, workers: list[ReplayWorker]) -> None:
    rows = [
        (f"worker only ({workers[0].name})", s.worker_accuracy, s.worker_only_usd),
        (f"frontier only ({workers[-1].name})", s.frontier_accuracy, s.frontier_only_usd),
        ("routed (this ledger)", s.routed_accuracy, s.spend_usd),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    emit()
    emit(f"questions routed: {s.n} ({s.dropped} contaminated prompts dropped)")
    emit(f"ledger:    {s.ledger} (prompts, answers and {s.labelled_routes} GSM8K labels stored)")
    emit(f"audit log: {s.audit} (started afresh with the ledger)")
    emit()
    emit(f"{'':<{width}}{'accuracy':>9}  {'spend':>10}")
    for label, accuracy, cost in rows:
        emit(f"{label:<{width}}{percent_text(accuracy):>9}  {usd(cost, places=4):>10}")
    emit()
    emit(f"escalation rate: {percent_text(s.escalation_rate)}")
    emit(f"savings vs frontier-only: {savings_text(s.spend_usd, s.frontier_only_usd)}")
    if s.failed_routes:
        emit(f"failed routes: {s.failed_routes} (their attempts are in the ledger)")
    emit()
    notes = (
        f"How frontier-only is priced: {counterfactual_method(s.top_tier)}.",
        f"For comparison (the dataset only): {workers[-1].model}'s own recorded answers to all "
        f"{s.n} questions cost {usd(s.frontier_recorded_usd, places=4)}.",
        f"Accuracy: the dataset's labels of each answer, stored in the ledger with source "
        f"{LABEL_SOURCE!r}; the worker-only and frontier-only accuracies are one model answering "
        f"every question. Tokens: {s.token_counter}.",
    )
    for note in notes:
        emit(textwrap.fill(note, width=100, subsequent_indent="  ", break_on_hyphens=False))
    emit()
    emit("Next:")
    commands = next_commands(s.ledger, s.audit)
    width = max(len(command) for command, _ in commands) + 2
    for command, what in commands:
        emit(f"  {command:<{width}}# {what}")


# --- refusing what is not the demo's ---------------------------------------------------------


def _check_replaceable_ledger(path: Path, demo_tiers: set[str]) -> None:
    """Refuse a file at ``path`` unless it is an earlier demo ledger (or absent)."""
    if not path.exists():
        return
    why = _not_a_demo_ledger(path, demo_tiers)
    if why is not None:
        raise ConfigError(
            f"{path} {why}; the demo only replaces its own ledger — pass another --ledger path",
            field="--ledger",
        )


def _not_a_demo_ledger(path: Path, demo_tiers: set[str]) -> str | None:
    if not path.is_file():
        return "is not a file"
    with path.open("rb") as handle:
        if handle.read(16) != _SQLITE_MAGIC:
            return "is not a paxis ledger (not a SQLite file)"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tiers = {row[0] for row in conn.execute("SELECT DISTINCT tier FROM attempts")}
            teams = {row[0] for row in conn.execute("SELECT DISTINCT team FROM attempts")}
        finally:
            conn.close()
    except sqlite3.Error:
        return "is not a paxis ledger (no attempts table)"
    if not tiers <= demo_tiers:
        return f"holds attempts of tiers the demo does not use ({sorted(tiers - demo_tiers)})"
    if not teams <= {DEMO_TEAM}:
        others = sorted(str(t) for t in teams - {DEMO_TEAM})
        return f"holds attempts of teams other than the demo's ({others})"
    return None


def _check_replaceable_audit(path: Path) -> None:
    """Refuse an audit log at ``path`` unless every record in it is the demo's."""
    if not path.exists():
        return
    why = None
    if not path.is_file():
        why = "is not a file"
    else:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
            except ValueError:
                why = f"line {number} is not a JSON audit record"
                break
            principal = record.get("principal") if isinstance(record, dict) else None
            if principal != DEMO_TEAM:
                why = f"line {number} is a record of {principal!r}, not of the demo"
                break
    if why is not None:
        raise ConfigError(
            f"audit log {path} {why}; the demo only replaces its own audit log — pass --audit "
            "PATH (or --ledger in another folder)",
            field="--audit",
        )
