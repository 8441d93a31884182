"""The Worker protocol and the Tier that wraps a worker with its price and place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from paxis_router.errors import (
    CircuitOpen,
    ContextWindowExceeded,
    ContextWindowTooSmall,
    UnsupportedContent,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.types import AttemptStatus
from paxis_router.workers.destination import destination_for_url, url_host

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


class TextFilter(Protocol):
    """Rewrites a stream's text in order (``feed`` each delta, ``flush`` at the end); it may hold
    back a tail that is not decided yet, e.g. half of a PII placeholder."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


@runtime_checkable
class RelaysStream(Protocol):
    """A worker that relays its answer's text to a client as it streams (the proxy's
    passthrough): the router gives it the filter that restores what the gate redacted."""

    def filter_relayed_text(self, text_filter: TextFilter) -> None: ...


@dataclass(frozen=True)
class Tier:
    """One rung of the escalation ladder: a worker, its price, and where its data goes.

    ``destination`` is ``"local"`` for on-premises workers, or ``"provider:region"`` (e.g.
    ``"openai:us"``) / ``"remote:<host>"`` for external ones; the action gate decides on it.
    ``host`` is the network host the worker connects to (taken from the worker's ``base_url``
    when not given; None for in-process workers and provider SDKs): the gate checks an
    on-premises ``destination`` against it, so a label cannot send data elsewhere.
    ``max_context_tokens`` lets the router skip a tier whose window is too small.
    ``resilience`` (timeouts, retries, a circuit breaker) guards the calls; None calls the
    worker directly.
    """

    worker: Worker
    price: Price | None = None
    destination: str = "local"
    max_context_tokens: int | None = None
    resilience: Resilience | None = None
    host: str | None = None

    def __post_init__(self) -> None:
        if self.host is None:
            base_url = getattr(self.worker, "base_url", None)
            if isinstance(base_url, str):
                object.__setattr__(self, "host", url_host(base_url) or "?")

    @property
    def name(self) -> str:
        return self.worker.name

    @property
    def is_local(self) -> bool:
        return self.destination == "local"

    async def call(
        self, request: ChatRequest, skill: Skill | None, *, window_floor: int | None = None
    ) -> Completion:
        """Call the worker the way the router does: skip the call (``ContextWindowTooSmall``)
        when this tier's window is no larger than one the prompt already overflowed
        (``window_floor``), else through the ``resilience`` guard (or directly without one)."""
        window = self.max_context_tokens
        if window_floor is not None and window is not None and window <= window_floor:
            raise ContextWindowTooSmall(
                f"skipped without a call: its context window ({window} tokens) is no larger than "
                f"{window_floor}, which the prompt already overflowed",
                worker=self.name,
                request_id=request.request_id,
            )
        if self.resilience is None:
            return await self.worker.complete(request, skill)
        return await self.resilience.call(self.worker, request, skill)


def classify_error(error: WorkerError) -> tuple[AttemptStatus, bool]:
    """How a failed call ended, by exception class (subclasses included): the attempt's status
    (``unavailable`` when the tier could not serve: down, timed out, breaker open; ``failed``
    otherwise) and whether anything reached the tier (an open breaker, a prompt known too long
    for the window, images a text-only tier cannot read: nothing did, the attempt costs exactly
    zero).

    Example:
        >>> class ProviderDown(WorkerUnavailable): ...
        >>> classify_error(ProviderDown("503", worker="frontier:f"))
        (<AttemptStatus.UNAVAILABLE: 'unavailable'>, True)
        >>> classify_error(CircuitOpen("open", worker="frontier:f"))
        (<AttemptStatus.UNAVAILABLE: 'unavailable'>, False)
    """
    unavailable = isinstance(error, WorkerUnavailable | WorkerTimeout)
    status = AttemptStatus.UNAVAILABLE if unavailable else AttemptStatus.FAILED
    return status, not isinstance(error, CircuitOpen | ContextWindowTooSmall | UnsupportedContent)


def overflowed_window(error: WorkerError, tier: Tier) -> int | None:
    """The context window the prompt overflowed on ``tier`` (a larger one may still fit), or
    None when the error was not an overflow or the tier's window is unknown."""
    if isinstance(error, ContextWindowExceeded) and not isinstance(error, ContextWindowTooSmall):
        return tier.max_context_tokens
    return None


def as_tier(value: Worker | Tier) -> Tier:
    """Wrap a bare worker as a tier, taking ``price`` and ``destination`` from it when present
    (a worker with a ``base_url`` and no ``destination``: derived from the URL's host)."""
    if isinstance(value, Tier):
        return value
    price = getattr(value, "price", None)
    destination = getattr(value, "destination", None)
    if destination is None:
        base_url = getattr(value, "base_url", None)
        destination = destination_for_url(base_url) if isinstance(base_url, str) else "local"
    window = getattr(value, "max_context_tokens", None)
    return Tier(worker=value, price=price, destination=destination, max_context_tokens=window)
