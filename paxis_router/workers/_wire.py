"""OpenAI's chat-completions wire shape, both ways, for the HTTP workers.

Out: every field of a ``ChatRequest`` that a tier must see (:data:`SENT_FIELDS`) goes into the
request body; the fields that stay with the router are :data:`LOCAL_FIELDS`. A test keeps the
two sets covering every field of ``ChatRequest``, so a field added there cannot be dropped
silently here. In: ``tool_calls`` of a response message, and the tool-call deltas of a stream,
assembled by index the way OpenAI streams them (id and name in a call's first delta, the
arguments in pieces; several calls interleaved).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from paxis_router.errors import UnsupportedContent
from paxis_router.types import FunctionCall, ToolCall

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Message

JsonObject = dict[str, Any]  # Any: OpenAI wire JSON is free-form

#: ChatRequest fields sent to the tier as they are (``None`` ones left out), besides
#: ``messages`` and ``logprobs`` (which each worker sends its own way).
SENT_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
    "user",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)
#: ChatRequest fields that never leave the router: routing facts and our own id.
LOCAL_FIELDS = frozenset({"metadata", "request_id"})


def wire_message(message: Message) -> JsonObject:
    """One message as OpenAI's JSON (a plain text message without building it through pydantic).

    Example:
        >>> from paxis_router.types import Message
        >>> wire_message(Message(role="user", content="hi"))
        {'role': 'user', 'content': 'hi'}
    """
    if (
        isinstance(message.content, str)
        and message.tool_calls is None
        and message.tool_call_id is None
    ):
        if message.name is None:
            return {"role": message.role, "content": message.content}
        return {"role": message.role, "content": message.content, "name": message.name}
    return message.wire()


def request_params(request: ChatRequest) -> JsonObject:
    """The request's sampling and tool parameters in OpenAI's JSON shape (unset ones left out).

    Example:
        >>> from paxis_router.types import ChatRequest
        >>> request = ChatRequest.from_text("q").model_copy(update={"seed": 7, "stop": ("x",)})
        >>> request_params(request)
        {'seed': 7, 'stop': ['x']}
    """
    params: JsonObject = {}
    for field in SENT_FIELDS:
        value = getattr(request, field)
        if value is None:
            continue
        if field == "tools":
            value = [tool.wire() for tool in value]
        elif field == "tool_choice" and not isinstance(value, str):
            value = value.wire()
        elif field == "stop" and isinstance(value, tuple):
            value = list(value)
        params[field] = value
    return params


def refuse_images(request: ChatRequest, worker: str, why: str) -> None:
    """Raise :class:`UnsupportedContent` when the request carries an image part.

    ``why`` completes the sentence "this tier ..." (e.g. "is declared text-only").
    """
    if request.has_images:
        raise UnsupportedContent(
            f"the request carries an image, and this tier {why}; it was not called (zero cost). "
            "Declare the tier with accepts_images=True if its model reads images, or let a "
            "tier that does answer",
            worker=worker,
            request_id=request.request_id,
        )


def tool_calls_of(raw: object) -> tuple[ToolCall, ...]:
    """The tool calls of a response message's ``tool_calls`` list (``()`` when absent).

    Malformed output is kept as a value for the verifiers to judge, never raised: a call
    without a name gets ``""``, one without an id a positional ``call_<i>``, arguments sent as a
    JSON object (some servers do) are re-encoded as text.

    Example:
        >>> raw = [{"id": "c1", "type": "function",
        ...         "function": {"name": "add", "arguments": '{"a": 1}'}}]
        >>> tool_calls_of(raw)[0].parsed_arguments()
        {'a': 1}
    """
    if not isinstance(raw, list):
        return ()
    calls = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        function = item.get("function")
        function = function if isinstance(function, dict) else {}
        calls.append(_tool_call(item.get("id"), function.get("name"), function.get("arguments"), i))
    return tuple(calls)


def _tool_call(call_id: object, name: object, arguments: object, index: int) -> ToolCall:
    if arguments is None:
        text = ""
    elif isinstance(arguments, str):
        text = arguments
    else:
        text = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        function=FunctionCall(name=name if isinstance(name, str) else "", arguments=text),
    )


class ToolCallAssembler:
    """Folds the ``delta.tool_calls`` pieces of a stream into whole tool calls.

    Each piece names its call by ``index``; the id and the function name come in the call's
    first piece and the arguments in fragments, concatenated in order (OpenAI's SDK does the
    same). A piece without an index continues the last call.

    Example:
        >>> calls = ToolCallAssembler()
        >>> calls.add([{"index": 0, "id": "c1", "function": {"name": "add", "arguments": ""}}])
        >>> calls.add([{"index": 0, "function": {"arguments": '{"a": '}}])
        >>> calls.add([{"index": 0, "function": {"arguments": "1}"}}])
        >>> calls.result()[0].arguments
        '{"a": 1}'
    """

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, pieces: object) -> None:
        """Fold one delta's ``tool_calls`` list in."""
        if not isinstance(pieces, list):
            return
        for piece in pieces:
            if not isinstance(piece, dict):
                continue
            index = piece.get("index")
            if not isinstance(index, int):
                index = max(self._calls, default=0)
            call = self._calls.setdefault(index, ["", "", ""])
            call_id = piece.get("id")
            if isinstance(call_id, str) and call_id and not call[0]:
                call[0] = call_id
            function = piece.get("function")
            if isinstance(function, dict):
                name = function.get("name")
                if isinstance(name, str):
                    call[1] += name
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    call[2] += arguments
                elif arguments is not None:
                    call[2] += json.dumps(arguments, ensure_ascii=False)

    def result(self) -> tuple[ToolCall, ...]:
        """The calls assembled so far, by index."""
        return tuple(
            _tool_call(call[0], call[1], call[2], index)
            for index, call in sorted(self._calls.items())
        )
