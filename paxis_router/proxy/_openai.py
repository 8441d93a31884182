"""OpenAI wire format <-> paxis values: request bodies (decoded and checked), responses, stream
chunks, error bodies. The body's parameters become a ChatRequest in ``_request``."""

from __future__ import annotations

import json
import math
import re
import time
from typing import TYPE_CHECKING, Any

from paxis_router.governance.secrets import scrub_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from paxis_router.types import Completion, ToolCall, Usage

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


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def finish_reason(completion: Completion) -> str:
    """The finish reason to send: ``tool_calls`` for an answer that calls tools (whatever the
    tier said, unless it was cut at the token limit), else the tier's, else ``stop``."""
    reason = completion.finish_reason
    if completion.tool_calls and reason in (None, "stop"):
        return "tool_calls"
    return reason or "stop"


def completion_is_unicode(completion: Completion) -> bool:
    """False when the answer's text or a tool call holds a lone surrogate (cannot be sent)."""
    return is_unicode(completion.content) and all(
        is_unicode(c.function.name) and is_unicode(c.function.arguments) and is_unicode(c.id)
        for c in completion.tool_calls
    )


def completion_json(
    completion_id: str, completion: Completion, usage: Usage, created: int
) -> dict[str, Any]:  # Any: a JSON document
    """A ``chat.completion`` object (with ``tool_calls`` when the answer calls tools, its
    content then null when empty, as OpenAI sends it)."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}  # Any: JSON
    if completion.tool_calls:
        message["content"] = completion.content or None
        message["tool_calls"] = [_call_json(c) for c in completion.tool_calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(completion),
            }
        ],
        "usage": usage_json(usage),
    }


def _call_json(call: ToolCall) -> dict[str, Any]:  # Any: a JSON document
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }


def _chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],  # Any: a JSON delta
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
        delta: dict[str, Any] = {"content": text}  # Any: a JSON delta
        if not self._started:
            delta["role"] = "assistant"
            self._started = True
        return _chunk(self.completion_id, self.model, self.created, delta, None)

    def tool_calls(self, calls: Sequence[ToolCall], piece_chars: int = STREAM_PIECE_CHARS) -> bytes:
        """The tool calls as OpenAI streams them: for each call (by index), a first delta with
        its index, id, type, function name and empty arguments, then its arguments in pieces
        of ``piece_chars`` characters (the first delta of the answer carries the role)."""
        out: list[bytes] = []
        for index, call in enumerate(calls):
            first: dict[str, Any] = {  # Any: a JSON delta
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": ""},
                    }
                ]
            }
            if not self._started:
                first = {"role": "assistant", "content": None, **first}
                self._started = True
            out.append(_chunk(self.completion_id, self.model, self.created, first, None))
            arguments = call.function.arguments
            for start in range(0, len(arguments), piece_chars):
                piece = {
                    "index": index,
                    "function": {"arguments": arguments[start : start + piece_chars]},
                }
                delta = {"tool_calls": [piece]}
                out.append(_chunk(self.completion_id, self.model, self.created, delta, None))
        return b"".join(out)

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
