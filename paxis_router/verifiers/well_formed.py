"""WellFormedVerifier: bad output (empty, truncated, no usage, not UTF-8, not JSON) is a verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxis_router.types import Verdict
from paxis_router.verifiers.response_format import response_format_problem

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion


class WellFormedVerifier:
    """Rejects answers a backend returned broken, so the router escalates instead of serving them.

    Fails on: empty content (an answer that calls tools may have none); ``finish_reason ==
    "length"`` (truncated); no ``usage`` reported (the cost cannot be accounted;
    ``require_usage=False`` turns this off); text that was not valid UTF-8 on the wire (U+FFFD
    replacement characters or lone surrogates); content that is not the JSON the request's
    ``response_format`` asked for (``json_object``, or ``json_schema`` with its schema: the
    check of :class:`~paxis_router.verifiers.response_format.ResponseFormatVerifier`).
    YAML: ``{kind: well_formed, require_usage: true}``.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> verdict = asyncio.run(WellFormedVerifier().verify(
        ...     ChatRequest.from_text("q"), Completion(content="ok", model="m", usage=None)))
        >>> verdict.passed, verdict.reason
        (False, 'no token usage reported: the cost cannot be accounted')
    """

    def __init__(self, *, require_usage: bool = True, name: str = "well_formed") -> None:
        self.name = name
        self.require_usage = require_usage

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        problem = self._problem(request, completion)
        if problem:
            return Verdict(self.name, False, 0.0, problem)
        return Verdict(self.name, True, None, "well formed")

    def _problem(self, request: ChatRequest, completion: Completion) -> str:
        content = completion.content
        if not content.strip() and not completion.tool_calls:
            return "empty answer"
        if completion.finish_reason == "length":
            return "truncated: finish_reason=length (raise max_tokens or escalate)"
        if "\ufffd" in content or not _encodes(content):
            return "the answer is not valid UTF-8"
        if self.require_usage and completion.usage is None:
            return "no token usage reported: the cost cannot be accounted"
        return response_format_problem(request, completion)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
