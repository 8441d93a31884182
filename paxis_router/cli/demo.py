"""``paxis demo``: RouteLLM's recorded GSM8K answers replayed through the real Router, offline.

Tier 1 replays Mixtral-8x7B's real answers (priced as a local GPU worker), tier 2 GPT-4's
(priced by litellm's map); the arithmetic verifier decides who answers. The summary compares
accuracy (the dataset's own labels of the tier that answered) and spend against worker-only and
frontier-only, and every attempt lands in a SQLite ledger (``paxis-demo.db`` unless ``--ledger``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.cli._output import emit, emit_json
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    import argparse

    from paxis_router.config.schema import RouterConfig
    from paxis_router.errors import PaxisError
    from paxis_router.types import RouteResult
    from paxis_router.workers.replay import ReplayWorker

DEFAULT_LEDGER = Path("paxis-demo.db")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def default_policy() -> Path:
    """policies/demo.yaml of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "policies" / "demo.yaml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis demo``."""
    parser = sub.add_parser(
        "demo",
        help="replay RouteLLM's real GSM8K answers through the router (offline, < 1 min)",
        description=__doc__,
    )
    parser.add_argument(
        "--ledger",
        type=Path,
        default=DEFAULT_LEDGER,
        help="the demo's SQLite ledger (default: ./paxis-demo.db; an earlier demo ledger there "
        "is replaced, any other file is refused)",
    )
    parser.add_argument("--limit", type=int, default=None, help="route only the first N questions")
    parser.add_argument(
        "--policy", type=Path, default=None, help="policy file (default: policies/demo.yaml)"
    )
    parser.add_argument("--gate", type=Path, default=None, help="a gate policy file to apply")
    parser.add_argument(
        "--audit",
        type=Path,
        default=None,
        help="the demo's hash-chained audit log, appended to (default: paxis-audit.jsonl "
        "beside the ledger); check it with `paxis audit verify`",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class DemoSummary:
    """The demo's figures. Accuracy comes from the dataset's labels of the tier that answered."""

    n: int
    dropped: int
    ledger: Path
    worker_accuracy: float
    frontier_accuracy: float
    routed_accuracy: float
    escalation_rate: float
    spend_usd: Decimal | None
    worker_only_usd: Decimal | None
    frontier_only_usd: Decimal | None
    token_counter: str
    failed_routes: int
    audit: Path | None = None

    @property
    def savings_usd(self) -> Decimal | None:
        if self.spend_usd is None or self.frontier_only_usd is None:
            return None
        return self.frontier_only_usd - self.spend_usd

    @property
    def savings_ratio(self) -> float | None:
        """frontier-only spend / routed spend (how many times cheaper routing is)."""
        if not self.spend_usd or self.frontier_only_usd is None:
            return None
        return float(self.frontier_only_usd / self.spend_usd)

    def to_json(self) -> dict[str, Any]:  # Any: a JSON object
        return {
            "n": self.n,
            "dropped_contaminated": self.dropped,
            "ledger": str(self.ledger),
            "accuracy": {
                "worker_only": round(self.worker_accuracy, 4),
                "frontier_only": round(self.frontier_accuracy, 4),
                "routed": round(self.routed_accuracy, 4),
            },
            "escalation_rate": round(self.escalation_rate, 4),
            "spend_usd": self.spend_usd,
            "worker_only_usd": self.worker_only_usd,
            "frontier_only_usd": self.frontier_only_usd,
            "savings_usd": self.savings_usd,
            "savings_ratio": None if self.savings_ratio is None else round(self.savings_ratio, 2),
            "token_counter": self.token_counter,
            "failed_routes": self.failed_routes,
            "audit_log": None if self.audit is None else str(self.audit),
        }


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis demo``."""
    import asyncio

    from paxis_router.config.schema import AuditSpec, LedgerSpec, load_config
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest, Message
    from paxis_router.workers.replay import REPLAY_ID_KEY

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1", field="--limit")
    policy_path: Path = args.policy or default_policy()
    cfg = load_config(policy_path)
    ledger_path: Path = args.ledger
    _clear_demo_ledger(ledger_path, cfg)
    update: dict[str, object] = {"ledger": LedgerSpec(path=ledger_path)}
    if args.gate is not None:
        from paxis_router.governance.gate import load_gate_policy

        update["gate"] = load_gate_policy(args.gate)
    from paxis_router.governance.audit import DEFAULT_AUDIT_PATH

    audit_path: Path = args.audit or ledger_path.parent / DEFAULT_AUDIT_PATH
    update["audit"] = AuditSpec(path=audit_path, fsync=False)  # a demo: no fsync per record
    router = Router.from_config(cfg.model_copy(update=update))
    workers = _replay_workers(router, policy_path)
    prompts, dropped = _questions(cfg, workers[0])
    ids = sorted(workers[0].outcomes, key=_id_order)[: args.limit]
    requests = [
        ChatRequest(
            messages=(Message(role="user", content=prompts[i]),),
            metadata={"team": "demo", REPLAY_ID_KEY: i},
            request_id=f"gsm8k-{i}",  # the ledger row says which question it answered
        )
        for i in ids
    ]
    if not args.json:
        emit(f"paxis demo: routing {len(requests)} GSM8K questions with {policy_path}")
    results = asyncio.run(
        router.route_many(requests, progress=not args.json, description="routing GSM8K")
    )
    for sink in router.sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            close()
    summary = summarise(ids, results, workers, ledger_path.resolve(), dropped)
    summary = replace(summary, audit=audit_path.resolve())
    if args.json:
        emit_json(summary.to_json())
    else:
        _print_summary(summary, workers)
    return 0


def _id_order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 62, key)


def _replay_workers(router: Any, policy_path: Path) -> list[ReplayWorker]:  # Any: a Router
    from paxis_router.workers.replay import ReplayWorker

    workers = [tier.worker for tier in router.tiers]
    if len(workers) < 2 or not all(isinstance(w, ReplayWorker) for w in workers):
        raise ConfigError(
            "the demo needs a ladder of at least two `kind: replay` tiers", source=str(policy_path)
        )
    return [w for w in workers if isinstance(w, ReplayWorker)]


def _questions(cfg: RouterConfig, worker: ReplayWorker) -> tuple[dict[str, str], int]:
    from paxis_router.config.schema import ReplayTierSpec
    from paxis_router.workers.replay import routellm_prompts

    spec = cfg.tiers[0]
    assert isinstance(spec, ReplayTierSpec)
    prompts = routellm_prompts(cfg.base_dir / spec.data)
    return prompts, len(prompts) - len(worker.outcomes)


def summarise(
    ids: list[str],
    results: list[RouteResult | PaxisError],
    workers: list[ReplayWorker],
    ledger: Path,
    dropped: int,
) -> DemoSummary:
    """The demo's figures from the routed results and the replayed outcomes."""
    from paxis_router.pricing import cost_or_none
    from paxis_router.types import RouteResult
    from paxis_router.workers.replay import token_counter_name

    by_name = {w.name: w for w in workers}
    worker, frontier = workers[0], workers[-1]
    n = len(ids)
    routed_right = escalated = failed = 0
    spend: Decimal | None = Decimal(0)
    for key, result in zip(ids, results, strict=True):
        if not isinstance(result, RouteResult):
            failed += 1
            continue
        answered = by_name[result.tier].outcome(key)
        routed_right += bool(answered.correct)
        escalated += result.escalated
        spend = None if spend is None or result.cost_usd is None else spend + result.cost_usd

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
        worker_accuracy=worker_acc,
        frontier_accuracy=frontier_acc,
        routed_accuracy=routed_right / n if n else 0.0,
        escalation_rate=escalated / n if n else 0.0,
        spend_usd=spend,
        worker_only_usd=worker_usd,
        frontier_only_usd=frontier_usd,
        token_counter=token_counter_name(),
        failed_routes=failed,
    )


def _usd(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def _print_summary(s: DemoSummary, workers: list[ReplayWorker]) -> None:
    rows = [
        (f"worker only ({workers[0].name})", s.worker_accuracy, s.worker_only_usd),
        (f"frontier only ({workers[-1].name})", s.frontier_accuracy, s.frontier_only_usd),
        ("routed", s.routed_accuracy, s.spend_usd),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    emit()
    emit(f"questions routed: {s.n} ({s.dropped} contaminated prompts dropped)")
    emit(f"ledger: {s.ledger}")
    if s.audit is not None:
        emit(f"audit log: {s.audit} (check it: paxis audit verify {s.audit})")
    emit()
    emit(f"{'':<{width}}{'accuracy':>9}  {'spend':>10}")
    for label, accuracy, usd in rows:
        emit(f"{label:<{width}}{accuracy:>9.1%}  {_usd(usd):>10}")
    emit()
    emit(f"escalation rate: {s.escalation_rate:.1%}")
    ratio = s.savings_ratio
    savings = "unknown" if ratio is None else f"{_usd(s.savings_usd)} ({ratio:.1f}x cheaper)"
    emit(f"savings vs frontier-only: {savings}")
    if s.failed_routes:
        emit(f"failed routes: {s.failed_routes} (their attempts are in the ledger)")
    emit(
        f"(tokens counted with {s.token_counter}; accuracy = the dataset's labels of the tier "
        "that answered)"
    )


def _clear_demo_ledger(path: Path, cfg: RouterConfig) -> None:
    """Remove an earlier demo ledger at ``path``; refuse any file that is not one."""
    if not path.exists():
        return
    demo_tiers = {spec.tier_name for spec in cfg.tiers}
    why = _not_a_demo_ledger(path, demo_tiers)
    if why is not None:
        raise ConfigError(
            f"{path} {why}; the demo only replaces its own ledger — pass another --ledger path",
            field="--ledger",
        )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


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
        finally:
            conn.close()
    except sqlite3.Error:
        return "is not a paxis ledger (no attempts table)"
    if not tiers <= demo_tiers:
        return f"holds attempts of tiers the demo does not use ({sorted(tiers - demo_tiers)})"
    return None
