"""Public fakes for tests at the model seam: no weights, no keys, no network.

Example:
    >>> import asyncio
    >>> worker = FakeWorker(["bad answer", "good answer"])
    >>> asyncio.run(worker.complete(ChatRequest.from_text("hi"), None)).content
    'bad answer'
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from paxis_router.errors import WorkerError
from paxis_router.policy.predicates import RouteState
from paxis_router.types import (
    Attempt,
    AttemptStatus,
    CallRecord,
    ChatRequest,
    Completion,
    Decision,
    Usage,
    Verdict,
    utc_now,
)

if TYPE_CHECKING:
    from paxis_router.pricing import Price
    from paxis_router.skills.model import Skill

Script = str | Completion | WorkerError


def _usage_for(request: ChatRequest, content: str) -> Usage:
    prompt = sum(len(m.text.split()) for m in request.messages)
    return Usage(prompt_tokens=max(prompt, 1), completion_tokens=max(len(content.split()), 1))


class FakeWorker:
    """Answers from a script, one entry per call; the last entry repeats.

    An entry is a string (the answer), a full ``Completion``, or a ``WorkerError`` to raise.
    ``calls`` records the requests it received. ``delay_s`` sleeps before answering.
    """

    def __init__(
        self,
        script: Sequence[Script],
        *,
        name: str = "fake:worker",
        model: str | None = None,
        price: Price | None = None,
        destination: str = "local",
        delay_s: float = 0.0,
    ):
        if not script:
            raise ValueError("FakeWorker needs at least one scripted answer")
        self.name = name
        self.model = model or name
        self.price = price
        self.destination = destination
        self.delay_s = delay_s
        self._script = list(script)
        self.calls: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        index = min(len(self.calls), len(self._script) - 1)
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        entry = self._script[index]
        if isinstance(entry, WorkerError):
            raise entry
        if isinstance(entry, Completion):
            return entry
        return Completion(
            content=entry,
            model=self.model,
            usage=_usage_for(request, entry),
            finish_reason="stop",
        )

    async def stream(
        self, request: ChatRequest, skill: Skill | None
    ) -> AsyncIterator[str | Completion]:
        """The next scripted answer as a token stream: one text delta per word (with its
        trailing space), then the whole Completion (what a streaming worker ends with)."""
        completion = await self.complete(request, skill)
        words = completion.content.split(" ")
        for i, word in enumerate(words):
            yield word if i == len(words) - 1 else word + " "
        yield completion


class FunctionWorker:
    """Adapts an async or sync function ``(request, skill) -> str | Completion`` to a Worker."""

    def __init__(
        self,
        fn: Callable[[ChatRequest, Skill | None], str | Completion | Awaitable[str | Completion]],
        *,
        name: str = "fn:worker",
        price: Price | None = None,
        destination: str = "local",
    ):
        self.fn = fn
        self.name = name
        self.model = name
        self.price = price
        self.destination = destination

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        out = self.fn(request, skill)
        if isinstance(out, Awaitable):
            out = await out
        if isinstance(out, Completion):
            return out
        return Completion(
            content=out, model=self.model, usage=_usage_for(request, out), finish_reason="stop"
        )


class FakeClock:
    """A monotonic clock that moves only when told to; ``sleep`` advances it and records waits.

    Pass it as ``clock=`` and its ``sleep`` as ``sleep=`` (e.g. to ``Resilience``): a test then
    runs days of backoff and breaker periods in milliseconds.

    Example:
        >>> clock = FakeClock()
        >>> asyncio.run(clock.sleep(2.5)); clock.advance(1); clock(), clock.sleeps
        (3.5, [2.5])
    """

    def __init__(self, start_s: float = 0.0):
        self.now = start_s
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move the clock by it, and yield to the event loop once."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class FakeVerifier:
    """Passes or fails from a script of booleans (or floats: a score, passed when >= 0.5)."""

    def __init__(self, script: Sequence[bool | float], *, name: str = "fake:verifier"):
        if not script:
            raise ValueError("FakeVerifier needs at least one scripted verdict")
        self.name = name
        self._script = list(script)
        self.calls = 0

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        entry = self._script[min(self.calls, len(self._script) - 1)]
        self.calls += 1
        if isinstance(entry, bool):
            return Verdict(self.name, entry, None, "scripted pass" if entry else "scripted fail")
        return Verdict(self.name, entry >= 0.5, float(entry), f"scripted score {entry}")


def make_attempt(
    *,
    tier_index: int = 0,
    passed: bool = True,
    confidence: float | None = None,
    status: AttemptStatus | str = AttemptStatus.ANSWERED,
    cost_usd: Decimal | str | None = "0",
) -> Attempt:
    """One attempt for policy table tests: answered (with one verdict, ``passed``, scored
    ``confidence``), or failed with ``status`` ``unavailable``/``failed``/``denied``."""
    status = AttemptStatus(status)
    answered = status is AttemptStatus.ANSWERED
    completion = Completion(content="answer", model="fake", usage=Usage(1, 1)) if answered else None
    error_types = {"unavailable": "WorkerUnavailable", "failed": "WorkerError", "denied": "Denied"}
    return Attempt(
        tier=f"tier{tier_index}",
        tier_index=tier_index,
        model="fake",
        started_at=utc_now(),
        latency_s=0.0,
        completion=completion,
        error=None if answered else f"scripted {status}",
        error_type=None if answered else error_types[status],
        verdicts=(Verdict("fake", passed, confidence, ""),) if answered else (),
        cost_usd=None if cost_usd is None else Decimal(cost_usd),
        status=status,
        called=status is not AttemptStatus.DENIED,
    )


def make_state(
    *,
    passed: bool = True,
    confidence: float | None = None,
    error: bool = False,
    tier_index: int = 0,
    n_tiers: int = 2,
    spent_usd: Decimal | str | None = "0",
    request: ChatRequest | None = None,
    attempts: Sequence[Attempt] | None = None,
    budget_exhausted: str | None = None,
    budget_refuses: bool = False,
    outage_mode: Literal["degrade", "refuse"] = "degrade",
) -> RouteState:
    """A RouteState for policy table tests: one attempt at ``tier_index`` with the given outcome
    (``error``: the tier was unavailable), or the given ``attempts`` (the last one is current)."""
    request = request or ChatRequest.from_text("test")
    if attempts is None:
        status = AttemptStatus.UNAVAILABLE if error else AttemptStatus.ANSWERED
        one = make_attempt(
            tier_index=tier_index, passed=passed, confidence=confidence, status=status
        )
        attempts = (one,)
    elif attempts:
        tier_index = attempts[-1].tier_index
    return RouteState(
        request=request,
        attempts=tuple(attempts),
        tier_index=tier_index,
        n_tiers=n_tiers,
        spent_usd=Decimal(0) if spent_usd is None else Decimal(spent_usd),
        unpriced_attempts=1 if spent_usd is None else 0,
        budget_exhausted=budget_exhausted,
        budget_refuses=budget_refuses,
        outage_mode=outage_mode,
    )


_RECORD = CallRecord(
    route_id="r",
    request_id="req-r",
    attempt_index=0,
    ts=datetime(2026, 11, 1, tzinfo=UTC),
    tier="local:qwen",
    tier_index=0,
    model="qwen-ft",
    decision=Decision.ACCEPT,
    reason="accept: 1 verifier(s) passed",
    final=True,
    team="claims",
    skill="invoice",
    data_class="internal",
    prompt_tokens=100,
    completion_tokens=20,
    latency_s=0.5,
    verdicts=(Verdict("schema", True, None, ""),),
    passed=True,
    finish_reason="stop",
)


def call_record(
    route_id: str = "r",
    attempt_index: int = 0,
    **changes: Any,  # Any: any CallRecord field, checked by the dataclass
) -> CallRecord:
    """A realistic ledger row for tests of sinks and reports: an accepted local attempt with a
    passing verdict; ``request_id`` follows ``route_id``; any field can be changed.

    Example:
        >>> row = call_record("r7", 1, final=False, cost_usd=Decimal("0.01"))
        >>> row.request_id, row.attempt_index, row.final, row.cost_usd
        ('req-r7', 1, False, Decimal('0.01'))
    """
    changes.setdefault("request_id", f"req-{route_id}")
    return dataclasses.replace(_RECORD, route_id=route_id, attempt_index=attempt_index, **changes)
