"""The fault matrix over real sockets: FakeUpstream -> OpenAICompatWorker -> Router -> SQLite.

Each fault is injected into the local tier's upstream on 127.0.0.1; the frontier tier is a fake
at the model seam. The README's reliability table names these tests.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import openai  # noqa: F401  # warm the lazy SDK import: 1 s deadlines should time the server
import pytest

from paxis_router.errors import TiersUnavailable
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.pricing import GpuHourPrice, TokenPrice
from paxis_router.router import Router
from paxis_router.testing import FakeClock, FakeWorker
from paxis_router.testing.upstream import FakeUpstream, FakeUpstreamProcess
from paxis_router.types import ChatRequest, Decision
from paxis_router.verifiers.well_formed import WellFormedVerifier
from paxis_router.workers.base import Tier
from paxis_router.workers.openai_compat import OpenAICompatWorker
from paxis_router.workers.resilience import (
    BreakerConfig,
    BreakerState,
    Resilience,
    ResilienceConfig,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from paxis_router.types import CallRecord

CONFIG = ResilienceConfig(
    total_timeout_s=1.0,
    max_attempts=3,
    backoff_initial_s=0.1,
    backoff_max_s=1.0,
    retry_after_cap_s=5.0,
    breaker=BreakerConfig(failure_threshold=5, error_rate=None, open_s=60),
)
FRONTIER_PRICE = TokenPrice.per_million("10", "30")


@dataclass
class Rig:
    router: Router
    ledger: SQLiteLedger
    clock: FakeClock
    guard: Resilience
    frontier: FakeWorker

    def rows(self) -> list[CallRecord]:
        return self.ledger.rows()

    def shape(self) -> list[tuple[str, str | None, Decision]]:
        return [(r.tier, r.error_type, r.decision) for r in self.rows()]


@asynccontextmanager
async def rig(
    tmp_path: Path,
    base_url: str,
    *,
    mid: FakeWorker | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncIterator[Rig]:
    clock = FakeClock()
    guard = Resilience(CONFIG, clock=clock, sleep=sleep or clock.sleep, rng=lambda: 0.5)
    worker = OpenAICompatWorker(
        "local:w", "fake-model", base_url, timeout_s=5.0, price=GpuHourPrice(Decimal("2"))
    )
    frontier = FakeWorker(["frontier answer"], name="frontier:f", price=FRONTIER_PRICE)
    tiers = [Tier(worker, price=worker.price, max_context_tokens=8192, resilience=guard)]
    if mid is not None:
        tiers.append(Tier(mid, max_context_tokens=8192))
    tiers.append(Tier(frontier, price=FRONTIER_PRICE, max_context_tokens=128_000))
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        router = Router(tiers=tiers, verifiers=[WellFormedVerifier()], ledger=ledger)
        try:
            yield Rig(router, ledger, clock, guard, frontier)
        finally:
            await worker.aclose()


def request() -> ChatRequest:
    return ChatRequest.from_text("what is six times seven", team="claims")


def upstream() -> FakeUpstream:
    return FakeUpstream(answer="local answer", trickle_bytes=8, trickle_delay_s=0.05)


@pytest.mark.parametrize(
    "fault",
    ["stall", "stall_after_first_chunk", "drop", "reset", "429", "500", "503", "slow_trickle"],
)
async def test_transient_fault_is_retried_then_served(tmp_path: Path, fault: str) -> None:
    with upstream() as up:
        up.inject(fault)
        async with rig(tmp_path, up.base_url) as r:
            result = await r.router.route(request())
            assert result.content == "local answer"
            assert (result.tier, result.degraded) == ("local:w", False)
            assert r.shape() == [("local:w", None, Decision.ACCEPT)]  # one attempt, one row
            assert len(up.requests) == 2  # the failed try and the retry
            assert r.guard.retries == 1
            expected_wait = 1.0 if fault == "429" else 0.075  # Retry-After: 1, else jittered
            assert r.clock.sleeps == [pytest.approx(expected_wait)]


@pytest.mark.parametrize("fault", ["401", "403", "404"])
async def test_gone_fault_opens_the_breaker_and_serves_from_the_frontier(
    tmp_path: Path, fault: str
) -> None:
    with upstream() as up:
        up.inject(fault)
        async with rig(tmp_path, up.base_url) as r:
            first = await r.router.route(request())
            second = await r.router.route(request())
            assert (first.tier, first.degraded, first.accepted) == ("frontier:f", True, True)
            assert (second.tier, second.degraded) == ("frontier:f", True)
            assert r.shape() == [
                ("local:w", "WorkerUnavailable", Decision.ESCALATE),
                ("frontier:f", None, Decision.ACCEPT),
                ("local:w", "CircuitOpen", Decision.ESCALATE),
                ("frontier:f", None, Decision.ACCEPT),
            ]
            rows = r.rows()
            assert f"HTTP {fault}" in (rows[0].error or "")
            assert rows[2].cost_usd == Decimal(0)  # skipped without a call
            assert (rows[1].degraded, rows[3].degraded) == (True, True)
            assert len(up.requests) == 1  # no retry, and nothing sent while open
            assert r.guard.breaker.state is BreakerState.OPEN


async def test_tls_failure_is_gone_at_once(tmp_path: Path) -> None:
    with upstream() as up:  # https:// to a plain-HTTP port: the handshake fails
        async with rig(tmp_path, f"https://127.0.0.1:{up.port}/v1") as r:
            result = await r.router.route(request())
            assert (result.tier, result.degraded) == ("frontier:f", True)
            assert r.shape()[0] == ("local:w", "WorkerUnavailable", Decision.ESCALATE)
            assert "WRONG_VERSION_NUMBER" in (r.rows()[0].error or "")
            assert r.guard.calls == 1
            assert r.guard.breaker.state is BreakerState.OPEN


async def test_dns_failure_is_gone_at_once(tmp_path: Path) -> None:
    def no_such_host(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    clock = FakeClock()
    guard = Resilience(CONFIG, clock=clock, sleep=clock.sleep)
    client = httpx.AsyncClient(transport=httpx.MockTransport(no_such_host))
    worker = OpenAICompatWorker("local:w", "m", "http://gpu-box.invalid/v1", http_client=client)
    frontier = FakeWorker(["frontier answer"], name="frontier:f")
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        router = Router(tiers=[Tier(worker, resilience=guard), frontier], ledger=ledger)
        try:
            result = await router.route(request())
        finally:
            await worker.aclose()
        assert [(row.tier, row.error_type) for row in ledger.rows()] == [
            ("local:w", "WorkerUnavailable"),
            ("frontier:f", None),
        ]
    assert (result.tier, result.degraded) == ("frontier:f", True)
    assert (guard.calls, guard.breaker.state) == (1, BreakerState.OPEN)


async def test_connection_refused_is_gone_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with rig(tmp_path, f"http://127.0.0.1:{port}/v1") as r:
        result = await r.router.route(request())
        assert (result.tier, result.degraded) == ("frontier:f", True)
        assert r.shape()[0] == ("local:w", "WorkerUnavailable", Decision.ESCALATE)
        assert "cannot reach" in (r.rows()[0].error or "")
        assert r.guard.calls == 1
        assert r.guard.breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("empty_content", "empty answer"),
        ("length", "finish_reason=length"),
        ("no_usage", "no token usage reported"),
    ],
)
async def test_bad_output_fails_a_verdict_and_escalates(
    tmp_path: Path, fault: str, why: str
) -> None:
    with upstream() as up:
        up.inject(fault)
        async with rig(tmp_path, up.base_url) as r:
            result = await r.router.route(request())
            assert (result.tier, result.degraded) == ("frontier:f", False)
            rows = r.rows()
            assert [(row.tier, row.passed) for row in rows] == [
                ("local:w", False),
                ("frontier:f", True),
            ]
            assert why in rows[0].verdicts[0].reason
            assert why in rows[0].reason
            assert len(up.requests) == 1  # a bad answer is not retried


@pytest.mark.parametrize(
    ("fault", "why"), [("malformed_json", "not JSON"), ("non_utf8", "not valid UTF-8")]
)
async def test_broken_body_fails_the_attempt_and_escalates(
    tmp_path: Path, fault: str, why: str
) -> None:
    with upstream() as up:
        up.inject(fault)
        async with rig(tmp_path, up.base_url) as r:
            result = await r.router.route(request())
            assert (result.tier, result.degraded) == ("frontier:f", False)
            assert r.shape() == [
                ("local:w", "WorkerError", Decision.ESCALATE),
                ("frontier:f", None, Decision.ACCEPT),
            ]
            assert why in (r.rows()[0].error or "")
            assert len(up.requests) == 1


async def test_context_overflow_skips_tiers_with_no_larger_window(tmp_path: Path) -> None:
    mid = FakeWorker(["mid answer"], name="local:mid")
    with upstream() as up:
        up.inject("400_context")
        async with rig(tmp_path, up.base_url, mid=mid) as r:
            result = await r.router.route(request())
            assert result.tier == "frontier:f"
            assert r.shape() == [
                ("local:w", "ContextWindowExceeded", Decision.ESCALATE),
                ("local:mid", "ContextWindowTooSmall", Decision.ESCALATE),
                ("frontier:f", None, Decision.ACCEPT),
            ]
            assert mid.calls == []
            assert r.rows()[1].cost_usd == Decimal(0)
            assert r.guard.breaker.state is BreakerState.CLOSED


async def test_process_killed_mid_response_fails_over_to_the_frontier(tmp_path: Path) -> None:
    with FakeUpstreamProcess(answer="local answer", inject=["kill"]) as proc:

        async def until_dead(seconds: float) -> None:  # the backoff lasts until the child is reaped
            await asyncio.to_thread(proc.wait, 10)

        async with rig(tmp_path, proc.base_url, sleep=until_dead) as r:
            result = await r.router.route(request())
            assert proc.poll() == -9
            assert (result.tier, result.degraded) == ("frontier:f", True)
            assert r.shape() == [
                ("local:w", "WorkerUnavailable", Decision.ESCALATE),
                ("frontier:f", None, Decision.ACCEPT),
            ]
            # the reset mid-body was retried; the retry found the port closed: gone, breaker open
            assert r.guard.calls == 2
            assert "cannot reach" in (r.rows()[0].error or "")
            assert r.guard.breaker.state is BreakerState.OPEN


async def test_both_tiers_down_raises_naming_both_causes(tmp_path: Path) -> None:
    with upstream() as local, FakeUpstream() as remote:
        local.mode = "503"
        remote.mode = "401"
        clock = FakeClock()
        guard = Resilience(CONFIG, clock=clock, sleep=clock.sleep)
        frontier_guard = Resilience(CONFIG, clock=clock, sleep=clock.sleep)
        worker = OpenAICompatWorker("local:w", "fake-model", local.base_url)
        frontier = OpenAICompatWorker("frontier:f", "gpt-x", remote.base_url)
        with SQLiteLedger(tmp_path / "ledger.db") as ledger:
            router = Router(
                tiers=[
                    Tier(worker, resilience=guard),
                    Tier(frontier, destination="openai:us", resilience=frontier_guard),
                ],
                ledger=ledger,
            )
            try:
                with pytest.raises(
                    TiersUnavailable, match=r"local:w: .*HTTP 503.*frontier:f: .*401"
                ):
                    await router.route(request())
            finally:
                await worker.aclose()
                await frontier.aclose()
            assert [(r.tier, r.error_type, r.final) for r in ledger.rows()] == [
                ("local:w", "WorkerUnavailable", False),
                ("frontier:f", "WorkerUnavailable", True),
            ]
        assert (len(local.requests), len(remote.requests)) == (3, 1)
