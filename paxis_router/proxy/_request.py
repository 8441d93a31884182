"""An OpenAI chat-completions request body -> ChatRequest, with every parameter accounted for.

Each parameter of OpenAI's chat-completions API is either honoured (sent on to the tiers, or
done by the proxy itself), refused with a 400 naming it, or ignored for a stated reason that
changes no answer: :data:`FORWARDED`, :data:`BY_THE_PROXY`, :data:`REFUSED`,
:data:`DEFAULT_ONLY` (accepted with the values that change nothing, refused with others) and
:data:`IGNORED`. A parameter OpenAI does not have is refused as OpenAI refuses it
("Unrecognized request argument"). docs/proxy.md shows the same table; a test sends every row.

Example:
    >>> request = to_chat_request(
    ...     {"model": "paxis/auto", "messages": [{"role": "user", "content": "hi"}], "seed": 7},
    ...     metadata={"team": "docs"},
    ... )
    >>> request.seed, request.team
    (7, 'docs')
    >>> try:
    ...     to_chat_request({"model": "m", "messages": [], "logit_bias": {"1": 5}}, metadata={})
    ... except BadRequest as exc:
    ...     print(exc.param)
    logit_bias
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from paxis_router.proxy._openai import BadRequest, untrusted
from paxis_router.types import ROUTING_KEYS, ChatRequest, Message
from paxis_router.workers._wire import SENT_FIELDS

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})

#: Parameters sent on to every tier a route calls (ChatRequest fields of the same name;
#: ``max_completion_tokens`` is sent as ``max_tokens``).
FORWARDED = frozenset({*SENT_FIELDS, "max_completion_tokens"})
#: Parameters the proxy itself honours.
BY_THE_PROXY = frozenset({"model", "messages", "stream", "stream_options", "metadata"})
#: Parameters refused with a 400 whenever they are set (not null), and why.
REFUSED: dict[str, str] = {
    "audio": "audio output is not supported: the tiers answer in text",
    "function_call": "it is deprecated by OpenAI; send tools and tool_choice instead",
    "functions": "it is deprecated by OpenAI; send tools and tool_choice instead",
    "logit_bias": "token ids differ between the models of a route's tiers",
    "top_logprobs": "the proxy does not return token logprobs",
    "reasoning_effort": (
        "a route's tiers are different models; set it per tier in the policy (the tier's "
        "extra_body)"
    ),
    "verbosity": (
        "a route's tiers are different models; set it per tier in the policy (the tier's "
        "extra_body)"
    ),
    "web_search_options": "no tier searches the web for the proxy",
    "moderation": "the proxy runs no moderation model; the policy gate screens requests",
}
#: Parameters accepted only with the values that change nothing (null too), and why others
#: are refused.
DEFAULT_ONLY: dict[str, tuple[tuple[object, ...], str]] = {
    "n": ((1,), "a route returns one answer (send n requests for n answers)"),
    "logprobs": (
        (False,),
        "the proxy does not return token logprobs (the router reads them itself, for its "
        "confidence checks)",
    ),
    "store": ((False,), "the proxy stores no completions for later retrieval"),
    "service_tier": (
        ("auto", "default"),
        "OpenAI's billing tiers do not apply: the router picks the tier",
    ),
    "modalities": ((["text"],), "the tiers answer in text only"),
}
#: Parameters accepted and not acted on, and why that changes no answer.
IGNORED: dict[str, str] = {
    "prediction": "a latency hint (predicted output); the answer is the same without it",
    "prompt_cache_key": "a hint for OpenAI's prompt cache; vLLM caches shared prefixes itself",
    "prompt_cache_retention": "a hint for OpenAI's prompt cache",
    "prompt_cache_options": "a hint for OpenAI's prompt cache",
    "safety_identifier": (
        "an end-user id for OpenAI's abuse monitoring; the proxy knows the caller by its key "
        "(send user to forward an id to the tiers)"
    ),
}
#: Every parameter the proxy knows; any other is refused as OpenAI refuses it.
KNOWN = FORWARDED | BY_THE_PROXY | REFUSED.keys() | DEFAULT_ONLY.keys() | IGNORED.keys()
# The parameters of an ordinary request: a body with no other keys skips every check below.
_COMMON = frozenset({"model", "messages", "stream", "max_tokens", "temperature"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
# OpenAI's limits on metadata.
_MAX_METADATA_KEYS = 16
_MAX_METADATA_KEY_CHARS = 64
_MAX_METADATA_VALUE_CHARS = 512
# Keys an SDK echoes back on an assistant message it received (null or empty): accepted.
_ECHOED_KEYS = frozenset({"refusal", "audio", "function_call", "annotations"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
_PLAIN_KEYS = frozenset({"role", "content", "name"})


def to_chat_request(
    body: dict[str, Any],  # Any: decoded JSON from the client
    *,
    metadata: dict[str, str],
) -> ChatRequest:
    """An OpenAI chat-completions body -> ChatRequest; BadRequest naming the parameter.

    ``metadata`` comes from the API key (team, data class), never from the body: a client
    cannot bill another team. The body's own ``metadata`` becomes the request's tags (recorded
    with every attempt), within OpenAI's limits, and may not set a routing key.
    """
    if not body.keys() <= _COMMON:
        _check_parameters(body)
        if body.get("metadata") is not None:
            metadata = {**_tags(body["metadata"]), **metadata}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    fields: dict[str, Any] = {}  # Any: the client's values, validated by ChatRequest
    for name in FORWARDED:
        value = body.get(name)
        if value is not None and name not in ("max_tokens", "max_completion_tokens"):
            fields[name] = value
    if fields.get("tools") == []:  # no tools: as if none were sent
        del fields["tools"]
    try:
        return ChatRequest(
            messages=parse_messages(body.get("messages")),
            metadata=metadata,
            max_tokens=max_tokens,
            **fields,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _param(first["loc"]) or _named_in(str(first["msg"]))
        if param == "max_tokens" and body.get("max_completion_tokens") is not None:
            param = "max_completion_tokens"  # the name the client sent
        message = untrusted(first["msg"]).removeprefix("Value error, ")
        raise BadRequest(f"{param or 'request'}: {message}", param=param) from exc


def _check_parameters(body: dict[str, Any]) -> None:  # Any: decoded JSON from the client
    """400 for a parameter that is unknown, refused, or set to a value the proxy cannot honour."""
    unknown = body.keys() - KNOWN
    if unknown:
        name = min(unknown)
        raise BadRequest(
            f"Unrecognized request argument supplied: {untrusted(name)} (docs/proxy.md lists "
            "the parameters the proxy takes)",
            param=untrusted(name),
            code="unknown_parameter",
        )
    for name in body.keys() & REFUSED.keys():
        if body[name] is not None:
            raise BadRequest(
                f"{name} is not supported by paxis routes: {REFUSED[name]}",
                param=name,
                code="unsupported_parameter",
            )
    for name in body.keys() & DEFAULT_ONLY.keys():
        allowed, why = DEFAULT_ONLY[name]
        value = body[name]
        if value is not None and not any(_same(value, a) for a in allowed):
            shown = " or ".join(f"{name}={a!r}" for a in allowed)
            raise BadRequest(
                f"{name}={untrusted(repr(value))} is not supported by paxis routes (only {shown}): "
                f"{why}",
                param=name,
                code="unsupported_parameter",
            )
    tools = body.get("tools")
    if not tools:
        for name in ("tool_choice", "parallel_tool_calls"):
            if body.get(name) is not None:
                raise BadRequest(f"{name} is only allowed when tools are specified", param=name)
    if tools is not None and not isinstance(tools, list):
        raise BadRequest("tools must be an array of function tools", param="tools")
    fmt = body.get("response_format")
    if fmt is not None:
        _check_response_format(fmt)


def _same(value: object, allowed: object) -> bool:
    # True == 1 in Python; a JSON true is not n=1.
    return type(value) is type(allowed) and value == allowed


def _check_response_format(fmt: object) -> None:
    if not isinstance(fmt, dict):
        raise BadRequest("response_format must be an object", param="response_format")
    kind = fmt.get("type")
    if kind not in _RESPONSE_FORMATS:
        raise BadRequest(
            f"response_format.type must be one of {sorted(_RESPONSE_FORMATS)}, got "
            f"{untrusted(repr(kind))}",
            param="response_format.type",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequest(
                "response_format.json_schema must be an object with a name (and a schema)",
                param="response_format.json_schema",
            )


def _tags(raw: object) -> dict[str, str]:
    """The body's ``metadata`` as tags, within OpenAI's limits; no routing key."""
    if not isinstance(raw, dict):
        raise BadRequest("metadata must be an object of strings", param="metadata")
    if len(raw) > _MAX_METADATA_KEYS:
        raise BadRequest(
            f"metadata may hold at most {_MAX_METADATA_KEYS} keys, got {len(raw)}",
            param="metadata",
        )
    for key, value in raw.items():
        if key in ROUTING_KEYS:
            raise BadRequest(
                f"metadata.{key} cannot be set by a client: the API key decides the team and "
                "the data class, the proxy the rest",
                param=f"metadata.{key}",
            )
        if len(key) > _MAX_METADATA_KEY_CHARS:
            raise BadRequest(
                f"metadata keys are at most {_MAX_METADATA_KEY_CHARS} characters",
                param="metadata",
            )
        if not isinstance(value, str) or len(value) > _MAX_METADATA_VALUE_CHARS:
            raise BadRequest(
                f"metadata.{untrusted(key)} must be a string of at most "
                f"{_MAX_METADATA_VALUE_CHARS} characters",
                param=f"metadata.{untrusted(key)}",
            )
    return raw


def parse_messages(raw: object) -> tuple[Message, ...]:
    """The ``messages`` array -> Message tuple; BadRequest naming the faulty index.

    Example:
        >>> parse_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])[0].text
        'hi'
    """
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' is required and must be a non-empty array", param="messages")
    out: list[Message] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = item.get("role")
        if role not in _ROLES:
            raise BadRequest(
                f"messages[{i}].role must be one of {sorted(_ROLES)}, got {untrusted(repr(role))}",
                param=f"messages[{i}].role",
            )
        content = item.get("content")
        if type(content) is str and item.keys() <= _PLAIN_KEYS and role != "tool":  # common
            name = item.get("name")
            out.append(
                Message(role=role, content=content, name=str(name) if name is not None else None)
            )
        else:
            out.append(_message(item, i))
    return tuple(out)


def _message(item: dict[str, Any], i: int) -> Message:  # Any: decoded JSON from the client
    """A message with content parts, tool calls or a tool result."""
    where = f"messages[{i}]"
    fields: dict[str, Any] = {}  # Any: the client's values, validated by Message
    for key, value in item.items():
        if key in _MESSAGE_KEYS:
            if value is not None:
                fields[key] = value
        elif key in _ECHOED_KEYS and item["role"] == "assistant":
            if key == "refusal" and isinstance(value, str) and item.get("content") is None:
                fields["content"] = value  # an earlier refusal: the model's text
            elif value not in (None, [], "") and key != "refusal":
                raise BadRequest(
                    f"{where}.{key} is not supported by paxis routes", param=f"{where}.{key}"
                )
        else:
            raise BadRequest(
                f"{where}: unrecognized key {untrusted(repr(key))}",
                param=f"{where}.{untrusted(key)}",
            )
    content = fields.get("content")
    if isinstance(content, list):
        fields["content"] = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    elif content is None and item["role"] == "assistant" and not fields.get("tool_calls"):
        fields["content"] = ""  # an empty assistant turn
    if "tool_calls" in fields:
        fields["tool_calls"] = _tool_calls(fields["tool_calls"], where)
    if "name" in fields:
        fields["name"] = str(fields["name"])
    try:
        return Message.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        param = f"{where}.{loc[0]}" if loc and loc[0] in Message.model_fields else where
        message = untrusted(first["msg"]).removeprefix("Value error, ")
        raise BadRequest(f"{param}: {message}", param=param) from exc


def _part(part: object, where: str) -> object:
    """One content part: text and images pass; any other kind is a 400 naming it."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "image_url"):
        return part
    raise BadRequest(
        f"{where}: content parts of type {untrusted(repr(kind))} are not supported by paxis "
        "routes (text and image_url are)",
        param=f"{where}.type",
    )


def _tool_calls(raw: object, where: str) -> object:
    """An assistant's tool calls with what an SDK adds on its side (``index``,
    ``parsed_arguments``) left out."""
    if not isinstance(raw, list):
        return raw
    calls = []
    for j, call in enumerate(raw):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise BadRequest(
                f"{where}.tool_calls[{j}] must be an object with id, type and function",
                param=f"{where}.tool_calls[{j}]",
            )
        function = call["function"]
        calls.append(
            {
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": {"name": function.get("name"), "arguments": function.get("arguments")},
            }
        )
    return calls


# Union branches pydantic names in an error's location (not the client's keys).
_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "dict", "list", "tuple", "literal"})


def _param(loc: tuple[int | str, ...]) -> str | None:
    """A validation error's location as the client's parameter path: ``tools[0].function``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not path:
            path = part
        elif part.isidentifier() and part[0].islower() and part not in _TYPE_NAMES:
            path += f".{part}"
    return untrusted(path) or None


def _named_in(message: str) -> str | None:
    """The parameter a whole-request validation message is about."""
    for phrase, name in (("tool_choice", "tool_choice"), ("tool", "tools"), ("stop", "stop")):
        if phrase in message:
            return name
    return None
