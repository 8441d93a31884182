"""The checks a request itself asks for, added to the configured verifiers of its route.

A request that asks for JSON (``response_format`` ``json_object`` / ``json_schema``) gets a
:class:`~paxis_router.verifiers.response_format.ResponseFormatVerifier`; one that offers
tools gets a :class:`~paxis_router.verifiers.tool_calls.ToolCallVerifier` (as does an answer
that calls tools nobody offered). Both check only what the request made explicit, so they never
reject an answer a tier was entitled to give, and a tier that breaks the contract (invalid JSON,
a call to a function not offered, arguments that do not fit its schema) is escalated instead of
served. A kind already among the configured verifiers (at the top level) is not added twice.

Example:
    >>> from paxis_router.types import ChatRequest, Completion
    >>> request = ChatRequest.from_text("q").model_copy(
    ...     update={"response_format": {"type": "json_object"}})
    >>> [v.name for v in implicit_verifiers(request, Completion("{}", "m"), ())]
    ['response_format']
    >>> implicit_verifiers(ChatRequest.from_text("q"), Completion("hi", "m"), ())
    ()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxis_router.verifiers.response_format import ResponseFormatVerifier, asks_for_json
from paxis_router.verifiers.tool_calls import ToolCallVerifier

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.types import ChatRequest, Completion
    from paxis_router.verifiers.base import Verifier

_RESPONSE_FORMAT = ResponseFormatVerifier()
_TOOL_CALLS = ToolCallVerifier()


def implicit_verifiers(
    request: ChatRequest,
    completion: Completion,
    configured: Sequence[Verifier],
    *,
    tools: bool = True,
) -> tuple[Verifier, ...]:
    """The verifiers ``request`` (and ``completion``'s tool calls) ask for that ``configured``
    lacks (see the module doc).

    ``tools=False`` leaves tool calls to the configured verifiers.
    """
    added: list[Verifier] = []
    if asks_for_json(request) and not any(
        isinstance(v, ResponseFormatVerifier) for v in configured
    ):
        added.append(_RESPONSE_FORMAT)
    calls = bool(request.tools or completion.tool_calls)
    if tools and calls and not any(isinstance(v, ToolCallVerifier) for v in configured):
        added.append(_TOOL_CALLS)
    return tuple(added)
