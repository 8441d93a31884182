"""OpenAI wire format <-> paxis values: request bodies, responses, stream chunks, error bodies."""

from __future__ import annotations

import json
import math
import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from paxis_router.governance.secrets import scrub_secrets
from paxis_router.types import ChatRequest, Message

if TYPE_CHECKING:
    from collections.abc import Iterator

    from paxis_router.types import Completion, Usage

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
STREAM_PIECE_CHARS = 48
# The deepest JSON nesting a request body may have (OpenAI's own structured-output schemas stop
# at 10 levels; tool schemas seldom pass 20).
MAX_JSON_DEPTH = 64
# The longest error message (and param) an error body carries.
MAX_ERROR_CHARS = 1000
MAX_PARAM_CHARS = 200
# The longest piece of outside text (a client's value, an upstream's message) an error quotes.
UNTRUSTED_CHARS = 200
# A number whose exponent has 3+ digits may overflow a float to infinity (1e999).
_HUGE_EXPONENT = re.compile(rb"[0-9.][eE]\+?[0-9]{3}")


class BadRequest(Exception):
    """A client error: becomes a 4xx OpenAI-style error body at the edge."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        self.message = message
        self.param = param
        self.code = code
        super().__init__(message)


def error_body(
    message: str, *, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``.

    The message is cut to ``MAX_ERROR_CHARS`` (and the param to ``MAX_PARAM_CHARS``) here, the
    one place every error body is made. Free text from outside (a client's input echoed back, a
    verifier's reason, an upstream's message) goes into a message only through ``untrusted``.
    """
    message = _cut(message, MAX_ERROR_CHARS)
    if param is not None:
        param = _cut(param, MAX_PARAM_CHARS)
    payload = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(payload).encode()


def untrusted(text: object, max_chars: int = UNTRUSTED_CHARS) -> str:
    """Text from outside, fit for an error message: credentials redacted, length bounded."""
    return scrub_secrets(str(text), max_chars=max_chars)


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… [{len(text) - max_chars} more characters]"


def _content_text(content: object, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(
                    f"messages[{index}].content: only text parts are supported, got "
                    f"{untrusted(repr(kind))}",
                    param=f"messages[{index}].content",
                )
        return "".join(parts)
    raise BadRequest(
        f"messages[{index}].content must be a string or a list of text parts",
        param=f"messages[{index}].content",
    )


def parse_messages(raw: object) -> tuple[Message, ...]:
    """The ``messages`` array -> Message tuple; BadRequest naming the faulty index."""
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
        name = item.get("name")
        out.append(
            Message(
                role=role,
                content=_content_text(item.get("content"), i),
                name=str(name) if name is not None else None,
            )
        )
    return tuple(out)


def parse_body(raw: bytes) -> dict[str, Any]:  # Any: decoded JSON from the client
    """Decode a JSON object body; BadRequest on anything else.

    Refused with a 400 naming the place: nesting deeper than ``MAX_JSON_DEPTH``, a lone UTF-16
    surrogate escape (``"\\ud800"``: not Unicode, it cannot be sent on as UTF-8), and the
    non-standard ``NaN``/``Infinity`` literals. The checks walk the body only when a cheap scan
    of the bytes says one of them can apply, so an ordinary request pays a few byte searches.
    """
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise BadRequest(
            f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels",
            code="json_too_deep",
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    deep = raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH
    surrogates = b"\\ud" in raw or b"\\uD" in raw
    non_finite = b"NaN" in raw or b"Infinity" in raw or _HUGE_EXPONENT.search(raw) is not None
    if deep or surrogates or non_finite:
        _check_values(body)
    return body


def _check_values(body: dict[str, Any]) -> None:  # Any: decoded JSON from the client
    """Walk the decoded body (iteratively): depth, lone surrogates, non-finite numbers."""
    stack: list[tuple[str, object, int]] = [("", body, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            if not is_unicode(value):
                raise _not_unicode(path or "body")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise BadRequest(
                    f"{untrusted(path)}: {json.dumps(value)} is not a finite number (JSON has no "
                    "NaN or Infinity, and a number must fit a 64-bit float)",
                    param=untrusted(path),
                )
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(
                    f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels (at "
                    f"{untrusted(path)})",
                    param=untrusted(path.split(".", 1)[0].split("[", 1)[0]) or None,
                    code="json_too_deep",
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    child = f"{path}.{key}" if path else str(key)
                    if not is_unicode(key):
                        raise _not_unicode(child)
                    stack.append((child, item, depth + 1))
            else:
                stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))


def is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(path: str) -> BadRequest:
    path = untrusted(replace_lone_surrogates(path))
    return BadRequest(
        f"{path}: the text holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), "
        "which is not Unicode; send the text as valid UTF-8",
        param=path,
        code="invalid_unicode",
    )


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, as a UTF-8 decoder does with bytes
    it cannot read (for text from an upstream that is sent on as it comes)."""
    if is_unicode(text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def encode_json(payload: dict[str, Any]) -> bytes | None:  # Any: a JSON document
    """Compact UTF-8 JSON, or None when the payload holds text that is not Unicode (a lone
    surrogate, which only an upstream's answer can bring in here)."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return None


def to_chat_request(
    body: dict[str, Any],  # Any: decoded JSON from the client
    *,
    metadata: dict[str, str],
) -> ChatRequest:
    """An OpenAI chat-completions body -> ChatRequest. ``metadata`` comes from the API key,
    never from the body (a client cannot bill another team)."""
    n = body.get("n")
    if n not in (None, 1):
        raise BadRequest("only n=1 is supported", param="n")
    if body.get("tools"):
        raise BadRequest(
            "tool calls are not supported by paxis routes; send plain chat messages", param="tools"
        )
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise BadRequest("response_format must be an object", param="response_format")
    try:
        return ChatRequest(
            messages=parse_messages(body.get("messages")),
            metadata=metadata,
            max_tokens=max_tokens,
            temperature=body.get("temperature"),
            logprobs=bool(body.get("logprobs") or False),
            response_format=response_format,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        param = untrusted(".".join(str(p) for p in first["loc"])) or None
        if param == "max_tokens" and "max_completion_tokens" in body:
            param = "max_completion_tokens"  # the name the client sent
        raise BadRequest(f"{param}: {untrusted(first['msg'])}", param=param) from exc


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_json(
    completion_id: str, completion: Completion, usage: Usage, created: int
) -> dict[str, Any]:  # Any: a JSON document
    """A ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.content},
                "logprobs": None,
                "finish_reason": completion.finish_reason or "stop",
            }
        ],
        "usage": usage_json(usage),
    }


def _chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, str],
    finish_reason: str | None,
) -> bytes:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def split_text(text: str, size: int = STREAM_PIECE_CHARS) -> Iterator[str]:
    """Pieces of about ``size`` characters, cut after whitespace where possible."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind(" ", start, end)
            if cut > start:
                end = cut + 1
        yield text[start:end]
        start = end


class ChunkWriter:
    """Writes one streamed answer as SSE ``chat.completion.chunk`` events."""

    def __init__(self, completion_id: str, model: str) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = int(time.time())
        self._started = False

    def delta(self, text: str) -> bytes:
        """One content chunk (the first one also carries the assistant role)."""
        delta = {"content": text}
        if not self._started:
            delta["role"] = "assistant"
            self._started = True
        return _chunk(self.completion_id, self.model, self.created, delta, None)

    def finish(self, finish_reason: str | None) -> bytes:
        """The closing chunk: an empty delta and the finish reason."""
        prefix = b"" if self._started else self.delta("")
        return prefix + _chunk(
            self.completion_id, self.model, self.created, {}, finish_reason or "stop"
        )

    def usage(self, usage: Usage) -> bytes:
        """The usage chunk OpenAI sends when ``stream_options.include_usage`` is true."""
        payload = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(usage),
        }
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    @staticmethod
    def error(message: str, type_: str, code: str | None) -> bytes:
        """An error event for a failure after the stream has begun."""
        return b"data: " + error_body(message, type_=type_, code=code) + b"\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


def include_usage(body: dict[str, Any]) -> bool:  # Any: decoded JSON from the client
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))
