"""NonEmptyVerifier: the answer has content and was not cut off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxis_router.types import Verdict

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion


class NonEmptyVerifier:
    """Rejects an empty or whitespace-only answer (one that calls tools instead is not empty),
    and one truncated at the token limit (``finish_reason == "length"``).

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> verdict = asyncio.run(
        ...     NonEmptyVerifier().verify(ChatRequest.from_text("hi"), Completion("  ", "m"))
        ... )
        >>> verdict.passed, verdict.reason
        (False, 'empty answer')
    """

    def __init__(self, *, name: str = "non_empty"):
        self.name = name

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        if not completion.content.strip() and not completion.tool_calls:
            return Verdict(self.name, False, None, "empty answer")
        if completion.finish_reason == "length":
            return Verdict(
                self.name,
                False,
                None,
                "answer truncated at the token limit (finish_reason='length'); raise max_tokens "
                "or let a larger tier answer",
            )
        if completion.tool_calls and not completion.content.strip():
            return Verdict(self.name, True, None, f"{len(completion.tool_calls)} tool call(s)")
        return Verdict(self.name, True, None, f"{len(completion.content)} characters")
