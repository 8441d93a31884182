"""The Verifier protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion, Verdict


@runtime_checkable
class Verifier(Protocol):
    """Judges one completion. A rejection is a returned ``Verdict(passed=False)``, never raised."""

    name: str

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict: ...
