"""Keep serving when a tier fails: timeouts, bounded retries, a circuit breaker, outage policy.

A tier opts in with ``Tier(worker, resilience=Resilience(ResilienceConfig(...)))``; the router
then calls it through :meth:`Resilience.call`. Failures fall into classes:

================================  ===========================================================
failure                           what happens
================================  ===========================================================
transient: 429, 5xx, timeout,     retried with exponential backoff and jitter (Retry-After
connection reset                  honoured, capped), at most ``max_attempts`` tries within
                                  ``retry_budget_s``; each failure counts toward the breaker
gone: 401/403, 404 model          no retry; the breaker opens at once
withdrawn, DNS, TLS, refused      (``WorkerUnavailable(transient=False)``)
breaker open                      the tier is skipped without a call: a ``CircuitOpen``
                                  attempt, zero cost; half-open probes find when it is back
bad output: empty, invalid JSON,  not an exception: ``WellFormedVerifier`` (verifiers) fails the
truncated, no usage, not UTF-8    answer and the router escalates
context window overflow           later tiers whose ``max_context_tokens`` is no larger are
                                  skipped (``ContextWindowTooSmall``, zero cost)
================================  ===========================================================

When a route ends without an accepted answer because an upper tier was unavailable, the
outage policy (``paxis_router.policy.outage``, per skill) decides: serve the best lower-tier
answer ``degraded``, or refuse.

Example:
    >>> import asyncio
    >>> from paxis_router.errors import WorkerUnavailable
    >>> from paxis_router.testing import FakeWorker
    >>> from paxis_router.types import ChatRequest
    >>> async def no_wait(seconds: float) -> None: ...
    >>> flaky = FakeWorker([WorkerUnavailable("503", worker="w"), "fine"], name="w")
    >>> guard = Resilience(ResilienceConfig(max_attempts=3), sleep=no_wait)
    >>> asyncio.run(guard.call(flaky, ChatRequest.from_text("q"), None)).content, guard.retries
    ('fine', 1)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paxis_router.errors import (
    CircuitOpen,
    ContextWindowExceeded,
    UnsupportedContent,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.workers.breaker import BreakerConfig, BreakerState, CircuitBreaker

if TYPE_CHECKING:
    import httpx

    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest, Completion
    from paxis_router.workers.base import Worker

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "Resilience",
    "ResilienceConfig",
]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class ResilienceConfig(BaseModel):
    """A tier's timeouts, retries and breaker, as written in the policy's ``resilience:`` key.

    Args:
        connect_timeout_s: TCP/TLS connect timeout (for HTTP workers: :meth:`http_timeout`).
        read_timeout_s: longest silence between two reads (for HTTP workers).
        total_timeout_s: a try that has not finished after this long fails as a
            ``WorkerTimeout`` (catches stalls and slow trickles); None: no limit.
        max_attempts: tries in all, the first included (1 = no retry). Always bounded.
        retry_budget_s: no retry starts once this long has passed since the first try.
        backoff_initial_s: the first retry's base wait; doubles per retry, with jitter
            (each wait is uniform in [base/2, base]).
        backoff_max_s: cap on the base wait.
        retry_after_cap_s: a server's Retry-After is honoured up to this many seconds.
        breaker: when the tier's circuit breaker opens and probes.

    Example:
        >>> config = ResilienceConfig.model_validate({"max_attempts": 2, "breaker": {"open_s": 5}})
        >>> config.breaker.open_s
        5.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    total_timeout_s: float | None = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_budget_s: float = Field(default=30.0, ge=0)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    retry_after_cap_s: float = Field(default=20.0, ge=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)

    @model_validator(mode="after")
    def _check_backoff(self) -> ResilienceConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s "
                f"({self.backoff_initial_s})"
            )
        return self

    def http_timeout(self) -> httpx.Timeout:
        """The connect/read timeouts as an ``httpx.Timeout`` for an HTTP worker's client."""
        import httpx

        total = self.total_timeout_s
        return httpx.Timeout(total, connect=self.connect_timeout_s, read=self.read_timeout_s)


class Resilience:
    """One tier's guard: a per-try deadline, bounded retries (tenacity), a circuit breaker.

    Give each tier its own instance (the breaker is per tier). The clock, the sleep and the
    jitter source are injectable, so tests run an outage of days in milliseconds.

    Args:
        config: the settings; ``ResilienceConfig()`` when None.
        clock: monotonic seconds, for the breaker and the retry budget.
        sleep: awaited between tries (``asyncio.sleep`` by default).
        rng: a ``[0, 1)`` source for the jitter.

    Attributes:
        breaker: the tier's :class:`CircuitBreaker`.
        retries: how many retries this guard has made (all calls together).
        calls: how many times the worker was called.

    Example:
        >>> guard = Resilience(ResilienceConfig(max_attempts=1))
        >>> guard.breaker.state
        <BreakerState.CLOSED: 'closed'>
    """

    def __init__(
        self,
        config: ResilienceConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config or ResilienceConfig()
        self.breaker = CircuitBreaker(self.config.breaker, clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self.retries = 0
        self.calls = 0

    async def call(self, worker: Worker, request: ChatRequest, skill: Skill | None) -> Completion:
        """Call ``worker`` under this guard; raises CircuitOpen without calling when open."""
        if not self.breaker.allow():
            raise CircuitOpen(
                f"circuit open ({self.breaker.reason}); skipped without a call, next probe in "
                f"{self.breaker.seconds_until_probe():.0f} s",
                worker=worker.name,
                request_id=request.request_id,
            )
        from tenacity import (
            AsyncRetrying,
            RetryCallState,
            retry_if_exception,
            stop_after_attempt,
        )

        started = self._clock()
        tries = 0

        def retryable(error: BaseException) -> bool:
            within_budget = self._clock() - started < self.config.retry_budget_s
            return within_budget and self._retryable(error)

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            return self._wait_s(state.attempt_number, error)

        async def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            outcome = state.outcome
            logger.info(
                "retrying %s after %s", worker.name, outcome.exception() if outcome else None
            )

        async def one_try() -> Completion:
            nonlocal tries
            tries += 1
            if tries > 1 and not self.breaker.allow():
                raise CircuitOpen(
                    f"circuit opened during retries ({self.breaker.reason})",
                    worker=worker.name,
                    request_id=request.request_id,
                )
            return await self._once(worker, request, skill)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=wait,
            retry=retry_if_exception(retryable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(one_try)

    def _wait_s(self, attempt_number: int, error: BaseException | None) -> float:
        hint = getattr(error, "retry_after_s", None)
        if isinstance(hint, int | float):
            return min(float(hint), self.config.retry_after_cap_s)  # honoured, capped
        base = min(
            self.config.backoff_max_s, self.config.backoff_initial_s * 2.0 ** (attempt_number - 1)
        )
        return base / 2 + float(self._rng()) * base / 2

    def _retryable(self, error: BaseException) -> bool:
        if isinstance(error, CircuitOpen) or self.breaker.state is not BreakerState.CLOSED:
            return False
        if isinstance(error, WorkerTimeout):
            return True
        return isinstance(error, WorkerUnavailable) and error.transient

    async def _once(self, worker: Worker, request: ChatRequest, skill: Skill | None) -> Completion:
        self.calls += 1
        total = self.config.total_timeout_s
        try:
            try:
                async with asyncio.timeout(total):
                    completion = await worker.complete(request, skill)
            except TimeoutError as exc:
                raise WorkerTimeout(
                    f"no complete answer within total_timeout_s={total} s (a stall or a slow "
                    "trickle); raise total_timeout_s if the tier is just slow",
                    worker=worker.name,
                    request_id=request.request_id,
                ) from exc
        except (ContextWindowExceeded, UnsupportedContent):
            self.breaker.release()  # the prompt's fault, not the tier's
            raise
        except WorkerUnavailable as exc:
            if exc.transient:
                self.breaker.record_failure(str(exc), retry_after_s=exc.retry_after_s)
            else:
                self.breaker.trip(str(exc))
            raise
        except WorkerError as exc:
            self.breaker.record_failure(str(exc))
            raise
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return completion
