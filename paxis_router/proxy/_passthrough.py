"""Passthrough: the first tier alone, unverified, never escalated — and, when its worker can
stream, its tokens sent on as they arrive.

The first-tier route still runs through a Router (same ledger, gate, audit, budgets), so the
attempt is recorded, priced and attributed like any other. A streaming worker is driven by a
tee: the Router's ``complete`` call consumes the worker's stream, pushing each text delta to a
queue the HTTP response reads, and returns the final Completion for the ledger.

A stream is bounded: the tier's total deadline applies to the whole stream (a stall or a slow
trickle fails as ``WorkerTimeout``), and when the client goes away the proxy calls
:meth:`TeeWorker.abandon`: the upstream stream is closed at once (a vLLM server stops
generating), and the attempt is recorded with what it produced so far, finish reason
``client_disconnected``, rejected by the ``proxy:client_stayed`` check (so it is never served,
accepted or exported as training data) and priced as the tier prices an answer of unknown
usage: unknown for per-token prices, GPU time held for a local tier.

Every delta goes to the client through one method, :meth:`TeeWorker._relay`, and through the
``text_filter`` given to :func:`tee_router` (a :class:`StreamFilter`): the seam where a
streaming PII-placeholder restorer plugs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from paxis_router.errors import WorkerError, WorkerTimeout
from paxis_router.policy.predicates import EscalationPolicy, never, tiers_exhausted
from paxis_router.proxy._openai import replace_lone_surrogates
from paxis_router.router import Router
from paxis_router.types import Completion, Verdict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from paxis_router.ledger.base import LedgerSink
    from paxis_router.policy.predicates import Predicate, RouteState
    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest
    from paxis_router.workers.base import Tier

#: The finish reason of an answer cut short because the client went away.
ABANDONED = "client_disconnected"


@runtime_checkable
class StreamingWorker(Protocol):
    """A worker that can also stream: text deltas, then one final Completion (with usage)."""

    name: str

    def stream(self, request: ChatRequest, skill: Skill | None) -> AsyncIterator[str | Completion]:
        """Yield the answer's text deltas, then the whole Completion."""
        ...


class StreamFilter(Protocol):
    """Rewrites a passthrough stream's text on its way to the client, e.g. restoring PII
    placeholders the gate put in the prompt. ``feed`` sees every delta in order and returns
    what to send now (it may hold back a partial placeholder); ``flush`` returns what is held
    back once the stream has ended."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


def first_tier_router(router: Router, tier: Tier | None = None) -> Router:
    """``router``'s first tier (or ``tier``) alone: no verifiers, never escalating, same sinks."""
    return Router(
        tiers=[tier or router.tiers[0]],
        policy=EscalationPolicy(escalate_when=never()),
        ledger=_sinks(router),
        skills=router.skills,
        skills_k=router.skills_k,
        gate=router.gate,
        audit=router.audit,
        outage=router.outage,
        budgets=router.budgets,
    )


def _sinks(router: Router) -> list[LedgerSink]:
    return [s for s in router.sinks if s is not router.budgets]


def stream_deadline_s(tier: Tier, default_s: float) -> float:
    """The total time a stream from ``tier`` may take: its ``resilience.total_timeout_s``,
    else its worker's ``timeout_s``, else ``default_s``."""
    if tier.resilience is not None and tier.resilience.config.total_timeout_s is not None:
        return float(tier.resilience.config.total_timeout_s)
    timeout = getattr(tier.worker, "timeout_s", None)
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return default_s


class ClientStayed:
    """Rejects an answer cut short because the client went away (finish reason
    ``client_disconnected``), so that the partial answer is recorded but never accepted."""

    name = "proxy:client_stayed"

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        if completion.finish_reason == ABANDONED:
            return Verdict(
                self.name,
                False,
                None,
                "the client went away mid-stream; the upstream stream was closed",
            )
        return Verdict(self.name, True)


class TeeWorker:
    """Consumes a streaming worker's stream for the Router; deltas go to ``queue``.

    Args:
        worker: the first tier's streaming worker.
        queue: where each delta (after ``text_filter``) is put for the HTTP response.
        deadline_s: the whole stream's time limit; past it the call fails as WorkerTimeout.
        text_filter: rewrites the text on its way to the client (see :class:`StreamFilter`).
    """

    def __init__(
        self,
        worker: StreamingWorker,
        queue: asyncio.Queue[str | None],
        *,
        deadline_s: float | None = None,
        text_filter: StreamFilter | None = None,
    ):
        self.name = worker.name
        self.model = str(getattr(worker, "model", worker.name))
        self.deadline_s = deadline_s
        self.deltas = 0
        self._worker = worker
        self._queue = queue
        self._filter = text_filter
        self._abandoned = False
        self._timeout: asyncio.Timeout | None = None

    def abandon(self) -> None:
        """The client went away: stop reading the upstream (its connection is closed) and end
        the call with the partial answer (finish reason ``client_disconnected``)."""
        self._abandoned = True
        timeout = self._timeout
        if timeout is not None and not timeout.expired():
            timeout.reschedule(asyncio.get_running_loop().time())

    def filter_relayed_text(self, text_filter: StreamFilter) -> None:
        """Set the filter the deltas pass through (the router sets the gate's placeholder
        restorer here when it redacted the prompt)."""
        self._filter = text_filter

    def _relay(self, text: str) -> None:
        """THE seam: every delta reaches the client through here (filter, then queue)."""
        text = replace_lone_surrogates(text)
        if self._filter is not None:
            text = self._filter.feed(text)
        if text:
            self._queue.put_nowait(text)

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        final: Completion | None = None
        parts: list[str] = []
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.deadline_s) as self._timeout:
                if self._abandoned:
                    self._timeout.reschedule(asyncio.get_running_loop().time())
                stream = self._worker.stream(request, skill)
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for item in stream:
                        if isinstance(item, Completion):
                            final = item
                        else:
                            parts.append(item)
                            self.deltas += 1
                            self._relay(item)
        except TimeoutError as exc:
            if self._abandoned:
                return Completion(
                    content="".join(parts),
                    model=self.model,
                    usage=None,
                    finish_reason=ABANDONED,
                    latency_s=time.perf_counter() - t0,
                )
            raise WorkerTimeout(
                f"the stream did not finish within its total deadline of {self.deadline_s} s "
                f"({self.deltas} deltas sent); raise the tier's resilience.total_timeout_s "
                "(or timeout_s) if it is just slow",
                worker=self.name,
                request_id=request.request_id,
            ) from exc
        finally:
            self._timeout = None
        if final is None:
            raise WorkerError(
                "the stream ended without its final completion; the worker's stream() must "
                "yield a Completion last",
                worker=self.name,
                request_id=request.request_id,
            )
        if self._filter is not None and (rest := self._filter.flush()):
            self._queue.put_nowait(rest)
        return final


def _failed_or_abandoned() -> Predicate:
    """True when the stream failed or its client went away: the checks a request implies
    (tool calls, JSON) are recorded with the attempt but, as in every passthrough, not acted
    on — the tier's answer is served as it is."""

    def predicate(state: RouteState) -> bool:
        last = state.last
        if last is None or last.completion is None:
            return True
        return any(v.verifier == ClientStayed.name and not v.passed for v in last.verdicts)

    predicate.__name__ = "failed_or_abandoned"
    return predicate


def tee_router(
    router: Router,
    queue: asyncio.Queue[str | None],
    *,
    default_deadline_s: float,
    text_filter: StreamFilter | None = None,
) -> tuple[Router, TeeWorker] | None:
    """A one-tier Router whose worker streams into ``queue``, and that worker; None when the
    first tier's worker cannot stream. Retries are off (a stream cannot be taken back once
    sent); the tier's total deadline bounds the whole stream (``stream_deadline_s``)."""
    tier = router.tiers[0]
    if not isinstance(tier.worker, StreamingWorker):
        return None
    tee = TeeWorker(
        tier.worker,
        queue,
        deadline_s=stream_deadline_s(tier, default_deadline_s),
        text_filter=text_filter,
    )
    one = Router(
        tiers=[replace(tier, worker=tee, resilience=None)],
        verifiers=[ClientStayed()],
        policy=EscalationPolicy(escalate_when=_failed_or_abandoned(), stop_when=tiers_exhausted()),
        ledger=_sinks(router),
        skills=router.skills,
        skills_k=router.skills_k,
        gate=router.gate,
        audit=router.audit,
        outage=router.outage,
        budgets=router.budgets,
    )
    return one, tee
