"""The Verifier protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion, Verdict


@runtime_checkable
class Verifier(Protocol):
    """Judges one completion. A rejection is a returned ``Verdict(passed=False)``, never raised.

    ``name`` is stable: ledger rows and reports key on it. ``score`` (optional, in [0, 1]) is
    the verifier's confidence; the policy's ``confidence_below`` reads the lowest score of an
    attempt. Any class with these two members is a Verifier (nothing to inherit); a plain
    function becomes one through ``CallableVerifier``.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion, Verdict
        >>> class ShortAnswer:
        ...     name = "short_answer"
        ...     async def verify(self, request, completion):
        ...         ok = len(completion.content) <= 20
        ...         return Verdict(self.name, ok, None, "" if ok else "answer too long")
        >>> isinstance(ShortAnswer(), Verifier)
        True
        >>> asyncio.run(ShortAnswer().verify(ChatRequest.from_text("?"), Completion("42", "m")))
        Verdict(verifier='short_answer', passed=True, score=None, reason='')
    """

    name: str

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict: ...
