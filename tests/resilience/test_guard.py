"""Resilience.call: deadlines, bounded retries with backoff and Retry-After, breaker wiring."""

from __future__ import annotations

import asyncio

import pytest

from paxis_router.errors import (
    CircuitOpen,
    ContextWindowExceeded,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.testing import FakeClock, FakeWorker, FunctionWorker
from paxis_router.types import ChatRequest, Completion
from paxis_router.workers.resilience import BreakerState, Resilience, ResilienceConfig

REQUEST = ChatRequest.from_text("q")


def guard(clock: FakeClock, rng: float = 0.5, **settings: object) -> Resilience:
    config = ResilienceConfig.model_validate(settings)
    return Resilience(config, clock=clock, sleep=clock.sleep, rng=lambda: rng)


def unavailable(
    status: int, *, transient: bool = True, retry_after_s: float | None = None
) -> WorkerUnavailable:
    return WorkerUnavailable(
        f"HTTP {status}",
        worker="w",
        transient=transient,
        status_code=status,
        retry_after_s=retry_after_s,
    )


def state(resilience: Resilience) -> BreakerState:
    return resilience.breaker.state


async def test_transient_failures_are_retried_with_jittered_exponential_backoff() -> None:
    clock = FakeClock()
    worker = FakeWorker([unavailable(503), unavailable(500), WorkerTimeout("t", worker="w"), "ok"])
    g = guard(clock, rng=0.5, max_attempts=4, backoff_initial_s=1, backoff_max_s=3)
    completion = await g.call(worker, REQUEST, None)
    assert completion.content == "ok"
    # base waits 1, 2, min(4, 3) = 3; equal jitter at rng 0.5 -> 0.75 of each
    assert clock.sleeps == [0.75, 1.5, 2.25]
    assert (g.calls, g.retries) == (4, 3)


@pytest.mark.parametrize(("rng", "low_high"), [(0.0, 0.5), (0.999, 0.9995)])
async def test_jitter_stays_within_half_to_full_base(rng: float, low_high: float) -> None:
    clock = FakeClock()
    g = guard(clock, rng=rng, max_attempts=2, backoff_initial_s=1)
    await g.call(FakeWorker([unavailable(503), "ok"]), REQUEST, None)
    assert clock.sleeps == [pytest.approx(low_high)]


async def test_retries_always_stop_and_reraise_the_last_error() -> None:
    clock = FakeClock()
    worker = FakeWorker([unavailable(503)])
    g = guard(clock, max_attempts=3, breaker={"failure_threshold": 10})
    with pytest.raises(WorkerUnavailable, match="HTTP 503"):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 3
    assert g.retries == 2


async def test_retry_after_is_honoured_and_capped() -> None:
    clock = FakeClock()
    worker = FakeWorker(
        [unavailable(429, retry_after_s=7), unavailable(429, retry_after_s=999), "ok"]
    )
    g = guard(clock, max_attempts=3, retry_after_cap_s=20)
    assert (await g.call(worker, REQUEST, None)).content == "ok"
    assert clock.sleeps == [7, 20]


async def test_no_retry_starts_after_the_retry_budget() -> None:
    clock = FakeClock()
    # the first wait (Retry-After 10 s) spends the whole 10 s budget
    worker = FakeWorker([unavailable(503, retry_after_s=10), unavailable(503), "ok"])
    g = guard(clock, max_attempts=5, retry_after_cap_s=60, retry_budget_s=10)
    with pytest.raises(WorkerUnavailable):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 2


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_gone_is_not_retried_and_opens_the_breaker_at_once(status: int) -> None:
    clock = FakeClock()
    worker = FakeWorker([unavailable(status, transient=False), "ok"])
    g = guard(clock, max_attempts=3)
    with pytest.raises(WorkerUnavailable, match=f"HTTP {status}"):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 1
    assert state(g) is BreakerState.OPEN
    with pytest.raises(CircuitOpen, match=rf"circuit open \(w: HTTP {status}\); skipped"):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 1  # the open breaker made no call


async def test_retries_stop_once_the_breaker_opens() -> None:
    clock = FakeClock()
    worker = FakeWorker([unavailable(503)])
    g = guard(clock, max_attempts=10, breaker={"failure_threshold": 2})
    with pytest.raises(WorkerUnavailable):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 2  # no retry storm against an open breaker


async def test_half_open_probe_recovers_the_tier() -> None:
    clock = FakeClock()
    worker = FakeWorker([unavailable(503), "back"])
    g = guard(clock, max_attempts=1, breaker={"failure_threshold": 1, "open_s": 30})
    with pytest.raises(WorkerUnavailable):
        await g.call(worker, REQUEST, None)
    with pytest.raises(CircuitOpen):
        await g.call(worker, REQUEST, None)
    clock.advance(30)
    assert (await g.call(worker, REQUEST, None)).content == "back"
    assert state(g) is BreakerState.CLOSED
    assert g.breaker.probes == 1


async def test_total_timeout_turns_a_stall_into_worker_timeout() -> None:
    never = asyncio.Event()

    async def stall(request: ChatRequest, skill: object) -> Completion:
        await never.wait()
        raise AssertionError("unreachable")

    g = Resilience(ResilienceConfig(total_timeout_s=0.05, max_attempts=1))
    with pytest.raises(WorkerTimeout, match=r"total_timeout_s=0.05 s"):
        await g.call(FunctionWorker(stall, name="w"), REQUEST, None)
    assert g.breaker.state is BreakerState.CLOSED  # one timeout is below the threshold


async def test_context_window_is_neither_retried_nor_held_against_the_tier() -> None:
    clock = FakeClock()
    worker = FakeWorker([ContextWindowExceeded("too long", worker="w")])
    g = guard(clock, max_attempts=3, breaker={"failure_threshold": 1})
    with pytest.raises(ContextWindowExceeded):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 1
    assert state(g) is BreakerState.CLOSED


async def test_bad_body_is_not_retried_but_counts_against_the_tier() -> None:
    clock = FakeClock()
    worker = FakeWorker([WorkerError("not JSON", worker="w")])
    g = guard(clock, max_attempts=3, breaker={"failure_threshold": 1})
    with pytest.raises(WorkerError, match="not JSON"):
        await g.call(worker, REQUEST, None)
    assert len(worker.calls) == 1
    assert state(g) is BreakerState.OPEN


async def test_a_cancelled_probe_frees_its_slot() -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def hang(request: ChatRequest, skill: object) -> Completion:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    g = guard(clock, max_attempts=1, breaker={"failure_threshold": 1, "open_s": 1})
    g.breaker.trip("down")
    clock.advance(1)
    probe = asyncio.ensure_future(g.call(FunctionWorker(hang, name="w"), REQUEST, None))
    await started.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert g.breaker.allow() is True  # the slot came back


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        ResilienceConfig(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_max_s"):
        ResilienceConfig(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValueError, match="extra"):
        ResilienceConfig.model_validate({"retries": 3})


def test_http_timeout_carries_connect_and_read() -> None:
    timeout = ResilienceConfig(connect_timeout_s=2, read_timeout_s=9).http_timeout()
    assert (timeout.connect, timeout.read) == (2, 9)
