"""Ledger rows equal attempts exactly: 1,000 concurrent routes with random tier failures, and a
SIGKILL in the middle of writing to the SQLite ledger."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

from paxis_router.errors import (
    ContextWindowExceeded,
    EscalationExhausted,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.pricing import TokenPrice
from paxis_router.router import Router
from paxis_router.testing import FakeClock, FunctionWorker
from paxis_router.types import Attempt, ChatRequest, Completion, Usage, Verdict
from paxis_router.workers.base import Tier
from paxis_router.workers.resilience import BreakerConfig, Resilience, ResilienceConfig

if TYPE_CHECKING:
    from pathlib import Path

    from paxis_router.skills.model import Skill


class PassesGood:
    name = "passes-good"

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        return Verdict(self.name, completion.content == "good")


def flaky(name: str, rng: random.Random) -> FunctionWorker:
    async def answer(request: ChatRequest, skill: Skill | None) -> Completion:
        for _ in range(rng.randrange(20)):  # interleave the routes in a random order
            await asyncio.sleep(0)
        roll = rng.random()
        if roll < 0.15:
            raise WorkerUnavailable("HTTP 503", worker=name, status_code=503)
        if roll < 0.22:
            raise WorkerTimeout("no answer in time", worker=name)
        if roll < 0.25:
            raise WorkerUnavailable("HTTP 404", worker=name, transient=False, status_code=404)
        if roll < 0.28:
            raise ContextWindowExceeded("too long", worker=name)
        content = "good" if roll < 0.7 else "bad"
        return Completion(content=content, model=name, usage=Usage(10, 2))

    return FunctionWorker(answer, name=name)


async def test_1000_concurrent_routes_with_random_failures_write_one_row_per_attempt(
    tmp_path: Path,
) -> None:
    rng = random.Random(20260419)
    clock = FakeClock()
    config = ResilienceConfig(
        max_attempts=2,
        breaker=BreakerConfig(failure_threshold=4, error_rate=None, open_s=5),
    )
    tiers = [
        Tier(
            flaky(name, rng),
            price=TokenPrice.per_million("1", "2"),
            resilience=Resilience(config, clock=clock, sleep=clock.sleep, rng=rng.random),
        )
        for name in ("local:a", "local:b", "frontier:c")
    ]
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        router = Router(tiers=tiers, verifiers=[PassesGood()], ledger=ledger)
        requests = [ChatRequest.from_text(f"task {i}", team="t") for i in range(1000)]
        results = await router.route_many(requests, concurrency=1000)
        rows = ledger.rows()

    attempts: list[Attempt] = []
    for outcome in results:
        if isinstance(outcome, EscalationExhausted):
            attempts.extend(outcome.attempts)
        else:
            assert not isinstance(outcome, BaseException), outcome
            attempts.extend(outcome.attempts)
    assert len(results) == 1000
    assert len(rows) == len(attempts)
    assert Counter(r.error_type for r in rows) == Counter(a.error_type for a in attempts)
    assert sum((r.cost_usd or Decimal(0)) for r in rows) == sum(
        (a.cost_usd or Decimal(0)) for a in attempts
    )
    by_route: dict[str, list[int]] = defaultdict(list)
    finals: Counter[str] = Counter()
    for row in rows:
        by_route[row.route_id].append(row.attempt_index)
        finals[row.route_id] += int(row.final)
    assert len(by_route) == 1000
    assert all(sorted(ix) == list(range(len(ix))) for ix in by_route.values())
    assert set(finals.values()) == {1}
    kinds = {r.error_type for r in rows}
    assert {None, "WorkerUnavailable", "WorkerTimeout", "CircuitOpen"} <= kinds
    assert all(r.cost_usd == 0 for r in rows if r.error_type == "CircuitOpen")


CHILD = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.types import CallRecord, Decision, utc_now

    def row(route, index, final):
        return CallRecord(
            route_id=route, request_id=route, attempt_index=index, ts=utc_now(), tier="t",
            tier_index=index, model="m", decision=Decision.ACCEPT if final else Decision.ESCALATE,
            reason="r", final=final, prompt_tokens=10, completion_tokens=2,
            cost_usd=Decimal("0.000123"),
        )

    ledger = SQLiteLedger(sys.argv[1])
    n = 0
    while True:
        if n % 2:  # record() queues; flush() returns once it is committed
            ledger.record(row(f"single-{n}", 0, True))
            ledger.flush()
        else:  # a route's rows in one transaction: all or nothing
            ledger.record_many([row(f"batch-{n}", i, i == 19) for i in range(20)])
        sys.stdout.write(f"{n}\\n")
        sys.stdout.flush()
        n += 1
    """
)


def test_sigkill_mid_write_leaves_every_committed_row(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    committed: list[int] = []
    with child.stdout:
        while len(committed) < 300:
            line = child.stdout.readline()
            assert line, "the writer exited before it was killed"
            committed.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        committed.extend(int(line) for line in child.stdout.read().split())

    with SQLiteLedger(db) as ledger:
        assert ledger.query("PRAGMA integrity_check") == [("ok",)]
        rows = ledger.rows()
    routes: Counter[str] = Counter(r.route_id for r in rows)
    for n in committed:  # every committed row is there ...
        assert routes[f"batch-{n}" if n % 2 == 0 else f"single-{n}"] == (20 if n % 2 == 0 else 1)
    assert all(count in (1, 20) for count in routes.values())  # ... and no half-written route
    assert len(routes) - len(committed) in (0, 1)  # at most one commit not yet reported
    assert all(r.cost_usd == Decimal("0.000123") for r in rows)
