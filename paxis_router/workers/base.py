"""The Worker protocol and the Tier that wraps a worker with its price and place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from paxis_router.pricing import Price
    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest, Completion
    from paxis_router.workers.resilience import Resilience


@runtime_checkable
class Worker(Protocol):
    """A model backend. ``complete`` makes one call and raises a WorkerError subclass on failure.

    ``name`` is stable (``"local:qwen-ft-v3"``, ``"frontier:gpt-4o"``): ledger rows and reports
    key on it. ``skill`` is the top selected skill (a worker may pick a LoRA adapter from it).
    """

    name: str

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion: ...


@dataclass(frozen=True)
class Tier:
    """One rung of the escalation ladder: a worker, its price, and where its data goes.

    ``destination`` is ``"local"`` for on-premises workers, or ``"provider:region"`` (e.g.
    ``"openai:us"``) for external ones; the action gate decides on it. ``max_context_tokens``
    lets the router skip a tier whose window is too small. ``resilience`` (timeouts, retries,
    a circuit breaker) guards the calls; None calls the worker directly.
    """

    worker: Worker
    price: Price | None = None
    destination: str = "local"
    max_context_tokens: int | None = None
    resilience: Resilience | None = None

    @property
    def name(self) -> str:
        return self.worker.name

    @property
    def is_local(self) -> bool:
        return self.destination == "local"


def as_tier(value: Worker | Tier) -> Tier:
    """Wrap a bare worker as a tier, taking ``price`` and ``destination`` from it when present."""
    if isinstance(value, Tier):
        return value
    price = getattr(value, "price", None)
    destination = getattr(value, "destination", "local")
    window = getattr(value, "max_context_tokens", None)
    return Tier(worker=value, price=price, destination=destination, max_context_tokens=window)
