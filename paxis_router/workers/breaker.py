"""A circuit breaker per tier: closed -> open -> half-open -> closed, on an injectable clock.

The error rate is counted over a time-based sliding window of fixed buckets (as resilience4j's
time-based window and Hystrix's rolling counters do): recording an outcome and reading the rate
cost O(1) whatever the call rate, and memory does not grow with traffic. The window slides one
bucket (``window_s / 60``) at a time, so an outcome leaves the count between ``window_s`` and
``window_s + window_s / 60`` after it was recorded.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Callable


class BreakerState(enum.StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerConfig(BaseModel):
    """When a tier's breaker opens and how it probes its way back.

    Args:
        failure_threshold: consecutive failures that open the breaker.
        error_rate: open when the failure rate over ``window_s`` reaches this (None: off) ...
        min_calls: ... provided at least this many calls ended in the window.
        window_s: the error-rate window, seconds.
        open_s: how long the breaker stays open before the first half-open probe.
        max_open_s: each failed probe doubles the open period, up to this cap. Probes sent
            during an outage of ``T`` seconds are therefore at most
            ``log2(max_open_s / open_s) + T / max_open_s + 1``, whatever the traffic.
        half_open_probes: calls let through at once while half-open.

    Example:
        >>> BreakerConfig(failure_threshold=3).open_s
        30.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(default=5, ge=1)
    error_rate: float | None = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=20, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    open_s: float = Field(default=30.0, gt=0)
    max_open_s: float = Field(default=3600.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)


class CircuitBreaker:
    """Counts a tier's failures and says whether a call may go through.

    Call ``allow()`` before a call; report its outcome with ``record_success()``,
    ``record_failure(reason)``, ``trip(reason)`` (a failure that will not heal: open at once) or
    ``release()`` (an outcome that says nothing about the tier's health, e.g. a prompt too long).

    Args:
        config: thresholds and periods.
        clock: monotonic seconds; inject a fake one in tests.

    Example:
        >>> now = [0.0]
        >>> breaker = CircuitBreaker(BreakerConfig(failure_threshold=2, open_s=10),
        ...                          clock=lambda: now[0])
        >>> breaker.record_failure("503"); breaker.record_failure("503")
        >>> breaker.state, breaker.allow()
        (<BreakerState.OPEN: 'open'>, False)
        >>> now[0] = 10.0
        >>> breaker.allow(), breaker.state       # one half-open probe goes through
        (True, <BreakerState.HALF_OPEN: 'half_open'>)
        >>> breaker.record_success(); breaker.state
        <BreakerState.CLOSED: 'closed'>
    """

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.reason = ""
        self.opened_count = 0
        self.probes = 0
        self._consecutive = 0
        self._window = _SlidingCounts(self.config.window_s)
        self._open_period_s = self.config.open_s
        self._reopen_at = 0.0
        self._probes_in_flight = 0

    def allow(self) -> bool:
        """True when a call may go through now (a half-open probe counts in ``probes``)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self._clock() < self._reopen_at:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probes_in_flight = 0
        if self._probes_in_flight >= self.config.half_open_probes:
            return False
        self._probes_in_flight += 1
        self.probes += 1
        return True

    def seconds_until_probe(self) -> float:
        """Seconds before the next half-open probe (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._reopen_at - self._clock())

    def record_success(self) -> None:
        """A call succeeded: a half-open breaker closes, a closed one forgets its streak."""
        self._consecutive = 0
        self._note(ok=True)
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.CLOSED
            self.reason = ""
            self._open_period_s = self.config.open_s
            self._window.clear()
        self._probes_in_flight = 0

    def record_failure(self, reason: str, *, retry_after_s: float | None = None) -> None:
        """A call failed in a way that may heal (429, 5xx, timeout, reset)."""
        self._consecutive += 1
        self._note(ok=False)
        if self.state is BreakerState.HALF_OPEN:
            self._open(reason, retry_after_s, backoff=True)
        elif self.state is BreakerState.CLOSED and self._should_open():
            self._open(reason, retry_after_s, backoff=False)

    def trip(self, reason: str) -> None:
        """A failure that will not heal by retrying (401/403/404, refused): open at once."""
        self._consecutive += 1
        self._note(ok=False)
        if self.state is not BreakerState.OPEN:
            self._open(reason, None, backoff=self.state is BreakerState.HALF_OPEN)

    def release(self) -> None:
        """An outcome that says nothing about the tier's health: free a half-open probe slot."""
        if self.state is BreakerState.HALF_OPEN and self._probes_in_flight:
            self._probes_in_flight -= 1

    def _note(self, *, ok: bool) -> None:
        self._window.add(self._clock(), ok=ok)

    def _should_open(self) -> bool:
        if self._consecutive >= self.config.failure_threshold:
            return True
        rate = self.config.error_rate
        calls, failed = self._window.calls, self._window.failures
        if rate is None or calls < self.config.min_calls:
            return False
        return failed / calls >= rate

    def _open(self, reason: str, retry_after_s: float | None, *, backoff: bool) -> None:
        if backoff:
            self._open_period_s = min(self._open_period_s * 2, self.config.max_open_s)
        period = self._open_period_s
        if retry_after_s is not None:
            period = min(max(period, retry_after_s), self.config.max_open_s)
        self.state = BreakerState.OPEN
        self.reason = reason
        self.opened_count += 1
        self._reopen_at = self._clock() + period
        self._probes_in_flight = 0


class _SlidingCounts:
    """Calls and failures over the last ``window_s`` seconds, in ``buckets`` fixed buckets.

    Example:
        >>> counts = _SlidingCounts(60.0)
        >>> counts.add(0.0, ok=False); counts.add(30.0, ok=True)
        >>> counts.calls, counts.failures
        (2, 1)
        >>> counts.add(61.5, ok=True)   # the first outcome has left the window
        >>> counts.calls, counts.failures
        (2, 0)
    """

    __slots__ = ("_bucket_s", "_calls", "_epochs", "_fails", "_last", "calls", "failures")

    def __init__(self, window_s: float, buckets: int = 60) -> None:
        self._bucket_s = window_s / buckets
        self._epochs = [-1] * buckets
        self._calls = [0] * buckets
        self._fails = [0] * buckets
        self._last = -1
        self.calls = 0
        self.failures = 0

    def add(self, now: float, *, ok: bool) -> None:
        epoch = int(now // self._bucket_s)
        if epoch > self._last:
            self._advance(epoch)
        slot = epoch % len(self._epochs)
        if self._epochs[slot] != epoch:  # a clock that went back: count in the current bucket
            slot = self._last % len(self._epochs)
        self._calls[slot] += 1
        self.calls += 1
        if not ok:
            self._fails[slot] += 1
            self.failures += 1

    def _advance(self, epoch: int) -> None:
        """Empty the buckets that fall out of the window when time reaches ``epoch``."""
        size = len(self._epochs)
        first = max(self._last + 1, epoch - size + 1)
        if epoch - self._last >= size:
            self.clear()
        else:
            for e in range(self._last + 1, epoch + 1):
                slot = e % size
                self.calls -= self._calls[slot]
                self.failures -= self._fails[slot]
                self._calls[slot] = self._fails[slot] = 0
                self._epochs[slot] = -1
        for e in range(first, epoch + 1):
            self._epochs[e % size] = e
        self._last = epoch

    def clear(self) -> None:
        size = len(self._epochs)
        self._epochs = [-1] * size
        self._calls = [0] * size
        self._fails = [0] * size
        self.calls = self.failures = 0
