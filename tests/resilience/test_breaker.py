"""CircuitBreaker: a state machine on a fake clock."""

from __future__ import annotations

import math
from collections import deque

import pytest

from paxis_router.testing import FakeClock
from paxis_router.workers.resilience import BreakerConfig, BreakerState, CircuitBreaker


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state through a call, so that mypy does not narrow it between steps."""
    return breaker.state


def make(clock: FakeClock, **settings: float) -> CircuitBreaker:
    config = BreakerConfig.model_validate({"error_rate": None, **settings})
    return CircuitBreaker(config, clock=clock)


def test_opens_after_n_consecutive_failures() -> None:
    breaker = make(FakeClock(), failure_threshold=3)
    breaker.record_failure("503")
    breaker.record_failure("503")
    assert state(breaker) is BreakerState.CLOSED
    breaker.record_failure("503 again")
    assert state(breaker) is BreakerState.OPEN
    assert breaker.reason == "503 again"
    assert breaker.allow() is False


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = make(FakeClock(), failure_threshold=2)
    breaker.record_failure("503")
    breaker.record_success()
    breaker.record_failure("503")
    assert state(breaker) is BreakerState.CLOSED


def test_opens_on_error_rate_over_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        BreakerConfig(failure_threshold=100, error_rate=0.5, min_calls=4, window_s=10),
        clock=clock,
    )
    for ok in (True, False, True):
        breaker.record_success() if ok else breaker.record_failure("500")
    assert state(breaker) is BreakerState.CLOSED  # 3 calls < min_calls
    breaker.record_failure("500")
    assert state(breaker) is BreakerState.OPEN  # 2 of 4 failed


def test_old_calls_leave_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        BreakerConfig(failure_threshold=100, error_rate=0.5, min_calls=2, window_s=10),
        clock=clock,
    )
    breaker.record_failure("500")
    clock.advance(11)
    breaker.record_success()
    breaker.record_success()
    breaker.record_failure("500")
    assert state(breaker) is BreakerState.CLOSED  # 1 of 3 in the window


def test_trip_opens_at_once() -> None:
    breaker = make(FakeClock(), failure_threshold=5)
    breaker.trip("401 unauthorised")
    assert state(breaker) is BreakerState.OPEN
    assert breaker.opened_count == 1


def test_half_open_lets_one_probe_through_then_closes_on_success() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, open_s=30)
    breaker.record_failure("503")
    clock.advance(29.9)
    assert breaker.allow() is False
    assert breaker.seconds_until_probe() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow() is True
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow() is False  # a single probe at a time
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.probes == 1
    assert breaker.allow() is True


def test_failed_probes_double_the_open_period_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, open_s=10, max_open_s=35)
    breaker.record_failure("503")
    periods = []
    for _ in range(4):
        periods.append(breaker.seconds_until_probe())
        clock.advance(breaker.seconds_until_probe())
        assert breaker.allow() is True
        breaker.record_failure("still 503")
    assert periods == [10, 20, 35, 35]
    assert breaker.probes == 4


def test_retry_after_lengthens_the_open_period_within_the_cap() -> None:
    breaker = make(FakeClock(), failure_threshold=1, open_s=10, max_open_s=100)
    breaker.record_failure("429", retry_after_s=60)
    assert breaker.seconds_until_probe() == 60
    capped = make(FakeClock(), failure_threshold=1, open_s=10, max_open_s=100)
    capped.record_failure("429", retry_after_s=10_000)
    assert capped.seconds_until_probe() == 100


def test_release_frees_a_probe_slot_without_judging_the_tier() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, open_s=5)
    breaker.trip("404")
    clock.advance(5)
    assert breaker.allow() is True
    breaker.release()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow() is True


def test_probes_over_a_long_outage_stay_within_the_documented_bound() -> None:
    clock = FakeClock()
    config = BreakerConfig(failure_threshold=1, error_rate=None, open_s=30, max_open_s=3600)
    breaker = CircuitBreaker(config, clock=clock)
    breaker.trip("withdrawn")
    outage_s = 19 * 86_400
    while clock() < outage_s:
        clock.advance(60.0)  # a caller every minute asks to go through
        if breaker.allow():
            breaker.trip("still withdrawn")
    bound = math.log2(config.max_open_s / config.open_s) + outage_s / config.max_open_s + 1
    assert 19 * 24 - 1 <= breaker.probes <= bound


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerConfig(failure_threshold=0)


def test_the_sliding_window_counts_what_an_exact_bucketed_window_counts() -> None:
    import random

    from paxis_router.workers.breaker import _SlidingCounts

    rng = random.Random(7)
    window_s, buckets = 60.0, 60
    counts = _SlidingCounts(window_s, buckets)
    live: deque[tuple[float, bool]] = deque()
    now = 0.0
    for _ in range(5_000):
        now += rng.choice([0.0, 0.01, 0.3, 2.0, 45.0, 130.0])
        ok = rng.random() > 0.2
        counts.add(now, ok=ok)
        live.append((now, ok))
        first_bucket = int(now // 1.0) - buckets + 1  # the window, in whole buckets
        while int(live[0][0] // 1.0) < first_bucket:
            live.popleft()
        assert (counts.calls, counts.failures) == (len(live), sum(not ok for _, ok in live))


def test_the_breaker_keeps_constant_memory_under_heavy_traffic() -> None:
    from paxis_router.workers.breaker import _SlidingCounts

    now = [0.0]
    breaker = CircuitBreaker(
        BreakerConfig(failure_threshold=10**9, error_rate=0.99, min_calls=10), clock=lambda: now[0]
    )
    for i in range(200_000):  # 2,000 calls/s for 100 s, one in ten failing
        now[0] = i / 2000
        if i % 10:
            breaker.record_success()
        else:
            breaker.record_failure("503")
    window = breaker._window
    assert isinstance(window, _SlidingCounts)
    assert len(window._calls) == 60
    assert window.calls == 120_000  # exactly the last 60 s of calls
    assert window.failures == 12_000
    assert breaker.state is BreakerState.CLOSED
