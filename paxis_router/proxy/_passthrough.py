"""Passthrough: the first tier alone, unverified, never escalated — and, when its worker can
stream, its tokens sent on as they arrive.

The first-tier route still runs through a Router (same ledger, gate, audit, budgets), so the
attempt is recorded, priced and attributed like any other. A streaming worker is driven by a
tee: the Router's ``complete`` call consumes the worker's stream, pushing each text delta to a
queue the HTTP response reads, and returns the final Completion for the ledger.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from paxis_router.errors import WorkerError
from paxis_router.policy.predicates import EscalationPolicy, never
from paxis_router.router import Router
from paxis_router.types import Completion

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator

    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest
    from paxis_router.workers.base import Tier


@runtime_checkable
class StreamingWorker(Protocol):
    """A worker that can also stream: text deltas, then one final Completion (with usage)."""

    name: str

    def stream(self, request: ChatRequest, skill: Skill | None) -> AsyncIterator[str | Completion]:
        """Yield the answer's text deltas, then the whole Completion."""
        ...


def first_tier_router(router: Router, tier: Tier | None = None) -> Router:
    """``router``'s first tier (or ``tier``) alone: no verifiers, never escalating, same sinks."""
    return Router(
        tiers=[tier or router.tiers[0]],
        policy=EscalationPolicy(escalate_when=never()),
        ledger=[s for s in router.sinks if s is not router.budgets],
        skills=router.skills,
        skills_k=router.skills_k,
        gate=router.gate,
        audit=router.audit,
        outage=router.outage,
        budgets=router.budgets,
    )


class TeeWorker:
    """Consumes a streaming worker's stream for the Router; deltas go to ``queue``."""

    def __init__(self, worker: StreamingWorker, queue: asyncio.Queue[str | None]):
        self.name = worker.name
        self.model = str(getattr(worker, "model", worker.name))
        self._worker = worker
        self._queue = queue

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        final: Completion | None = None
        async for item in self._worker.stream(request, skill):
            if isinstance(item, Completion):
                final = item
            else:
                self._queue.put_nowait(item)
        if final is None:
            raise WorkerError(
                "the stream ended without its final completion; the worker's stream() must "
                "yield a Completion last",
                worker=self.name,
                request_id=request.request_id,
            )
        return final


def tee_router(router: Router, queue: asyncio.Queue[str | None]) -> Router | None:
    """A one-tier Router whose worker streams into ``queue``; None when the first tier's worker
    cannot stream. Retries are off: a stream cannot be taken back once sent."""
    tier = router.tiers[0]
    if not isinstance(tier.worker, StreamingWorker):
        return None
    tee = TeeWorker(tier.worker, queue)
    return first_tier_router(router, replace(tier, worker=tee, resilience=None))
