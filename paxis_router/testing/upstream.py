"""A real OpenAI-compatible HTTP/1.1 server on 127.0.0.1 that can be told to misbehave.

Tests (and the proxy's load benchmark) point a real client at it over a real socket. It speaks
just enough of the OpenAI API: ``POST /v1/chat/completions`` (JSON, or SSE when
``"stream": true``) and ``GET /v1/models``. It is built on ``asyncio.start_server`` in a
background thread, so it can fail at the socket level: stall, drop or reset the connection,
trickle bytes, or (run as a subprocess) die in the middle of a response.

Fault modes (:data:`FAULTS`) apply to chat-completion requests only. ``inject(...)`` queues
faults for the next requests, one each; when the queue is empty ``mode`` applies (``"ok"`` by
default):

========================  =================================================================
``ok``                    a normal answer
``stall``                 read the request, never answer (until the server stops)
``stall_after_first_chunk``  send the headers and the first chunk (SSE event or half the
                          JSON body), then never finish
``drop``                  close the connection without any response
``reset``                 abort the connection with a TCP RST
``429``                   ``429`` with ``Retry-After: <retry_after_s>``
``500`` / ``503``         server errors (OpenAI error JSON)
``400_context``           ``400`` with ``code: context_length_exceeded``
``401`` / ``403``         invalid key / permission denied
``404``                   ``404`` with ``code: model_not_found``
``malformed_json``        ``200`` with a truncated JSON body
``non_utf8``              ``200`` whose content holds bytes that are not UTF-8
``empty_content``         ``200`` with ``content: ""``
``no_usage``              ``200`` without ``usage``
``length``                ``200`` with ``finish_reason: "length"``
``slow_trickle``          a normal answer sent ``trickle_bytes`` at a time,
                          ``trickle_delay_s`` apart
``kill``                  send the headers and part of the body, then die: a subprocess
                          (:class:`FakeUpstreamProcess`) SIGKILLs itself; in-process, the
                          server aborts every connection and stops listening
``endless_body``          ``200`` whose body never ends (a JSON body that keeps growing, or
                          SSE events without end), until the client hangs up
``huge_error``            ``500`` with an OpenAI error body of ``huge_error_bytes`` (20 MB)
========================  =================================================================

Tool calls: ``FakeUpstream(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])``
(or a function of the request returning such a list, or None for a text answer) answers with
those calls and ``finish_reason: "tool_calls"``; streamed, each call comes as OpenAI streams it:
a first delta with its index, id and name, then its arguments in pieces of
``tool_call_chunk_chars`` characters (``interleave_tool_calls=True`` interleaves the pieces of
several calls). ``arguments`` given as text are sent as they are (malformed JSON included).

Every chat-completion request is checked the way OpenAI checks it (message roles and shapes,
content parts, tool results answering an earlier call, tools, ``tool_choice`` naming an offered
tool); a request that fails gets OpenAI's ``400 invalid_request_error`` naming the problem.
``requests`` holds every JSON body received, so tests assert on the exact JSON a client sent.

Example:
    >>> import httpx
    >>> with FakeUpstream(answer="42", model="fake-model") as up:
    ...     body = {"model": "fake-model", "messages": [{"role": "user", "content": "6*7?"}]}
    ...     up.inject("503")
    ...     first = httpx.post(f"{up.base_url}/chat/completions", json=body)
    ...     second = httpx.post(f"{up.base_url}/chat/completions", json=body)
    >>> first.status_code, second.json()["choices"][0]["message"]["content"]
    (503, '42')
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FAULTS", "FakeUpstream", "FakeUpstreamProcess", "ToolCalls", "main", "request_problem"]

FAULTS: Final[frozenset[str]] = frozenset(
    {
        "ok",
        "stall",
        "stall_after_first_chunk",
        "drop",
        "reset",
        "429",
        "500",
        "503",
        "400_context",
        "401",
        "403",
        "404",
        "malformed_json",
        "non_utf8",
        "empty_content",
        "no_usage",
        "length",
        "slow_trickle",
        "kill",
        "endless_body",
        "huge_error",
    }
)

JsonDict = dict[str, Any]  # vendor boundary: OpenAI wire JSON is free-form
Answer = str | Callable[[JsonDict], str]
#: Scripted tool calls: ``{"name": ..., "arguments": {...} or "raw text", "id"?: ...}`` each.
ToolCalls = Sequence[JsonDict] | Callable[[JsonDict], Sequence[JsonDict] | None]

_TOKEN_RE: Final = re.compile(r"\s*\S+|\s+")
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_ERRORS: Final[dict[str, tuple[int, str, str, str]]] = {
    # fault: (status, OpenAI error type, code, message)
    "429": (429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached; retry later."),
    "500": (500, "server_error", "internal_error", "The server had an error."),
    "503": (503, "server_error", "overloaded", "The engine is currently overloaded."),
    "400_context": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 8192 tokens; your messages resulted in 9000.",
    ),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "403": (403, "permission_error", "permission_denied", "This model is not available to you."),
    "404": (404, "invalid_request_error", "model_not_found", "The model does not exist."),
}
_MAX_BODY_BYTES: Final = 16 * 1024 * 1024


class _Killed(Exception):
    """Raised inside a handler after a ``kill`` fault aborted the server."""


class _NotHttp(Exception):
    """The client spoke something else (e.g. TLS) on the plain-HTTP port."""


def _check_faults(faults: Sequence[str]) -> None:
    for fault in faults:
        if fault not in FAULTS:
            known = ", ".join(sorted(FAULTS))
            raise ValueError(f"unknown fault mode {fault!r}; use one of: {known}")


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text) or ([text] if text else [])


def _prompt_tokens(body: JsonDict) -> int:
    count = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(content.split())
    return max(count, 1)


class _State:
    """Mutable server state shared by the server thread and the test thread (GIL-protected)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.faults: collections.deque[str] = collections.deque()
        self.requests: list[JsonDict] = []
        self.connections = 0
        self.open_connections = 0
        self.endless_bytes_sent = 0
        self.received = threading.Condition()

    def record(self, request: JsonDict) -> None:
        with self.received:
            self.requests.append(request)
            self.received.notify_all()

    def next_fault(self) -> str:
        try:
            return self.faults.popleft()
        except IndexError:
            return self.mode


class _Server:
    """The asyncio protocol logic; runs on one event loop (a thread's, or a subprocess's)."""

    def __init__(
        self,
        *,
        answer: Answer,
        model: str,
        logprobs: bool,
        token_logprob: float,
        retry_after_s: float,
        trickle_bytes: int,
        trickle_delay_s: float,
        state: _State,
        die_on_kill: bool,
        tool_calls: ToolCalls | None = None,
        tool_call_chunk_chars: int = 8,
        interleave_tool_calls: bool = False,
        huge_error_bytes: int = 20_000_000,
    ) -> None:
        self.tool_calls = tool_calls
        self.tool_call_chunk_chars = max(tool_call_chunk_chars, 1)
        self.interleave_tool_calls = interleave_tool_calls
        self.huge_error_bytes = huge_error_bytes
        self.answer = answer
        self.model = model
        self.logprobs = logprobs
        self.token_logprob = token_logprob
        self.retry_after_s = retry_after_s
        self.trickle_bytes = trickle_bytes
        self.trickle_delay_s = trickle_delay_s
        self.state = state
        self.die_on_kill = die_on_kill
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.killed = False
        self.stopped = asyncio.Event()

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._on_connect, host, port)
        sock = self.server.sockets[0]
        return int(sock.getsockname()[1])

    async def shutdown(self) -> None:
        """Stop listening, abort every connection and wait for every handler to end."""
        # asyncio makes an accepted connection's transport one loop iteration after accepting
        # it, and one made for a server already closed fails half-built (Python 3.11 asserts in
        # Server._attach), its socket left to the garbage collector: a ResourceWarning later,
        # in another test. Connections accepted by now get their transports (and are aborted
        # below) before the server closes; only a client connecting during the stop races it.
        for _ in range(3):
            await asyncio.sleep(0)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in list(self.writers):
            writer.transport.abort()
        # A closed or aborted transport releases its socket in a later loop iteration: give it
        # those iterations before the loop stops, or the socket leaks (a ResourceWarning).
        for _ in range(3):
            await asyncio.sleep(0)
        self.stopped.set()

    async def drain_late_connections(self) -> None:
        """Abort connections accepted while shutting down (asyncio builds their transports in
        later loop iterations) and give the aborts the iterations that release the sockets."""
        for _ in range(3):
            await asyncio.sleep(0.01)
            for writer in list(self.writers):
                writer.transport.abort()
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)

    # -- connection handling ------------------------------------------------------------------

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Track the writer now, not in the task: a task cancelled by shutdown before its first
        # step never runs its body, and its connection would then never be closed.
        self.writers.add(writer)
        if self.stopped.is_set():
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve_connection(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.state.connections += 1
        with self.state.received:
            self.state.open_connections += 1
        broken = False
        try:
            keep_alive = True
            while keep_alive and not self.killed:
                request = await self._read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                keep_alive = headers.get("connection", "").lower() != "close"
                keep_alive = await self._dispatch(method, path, body, writer) and keep_alive
        except _NotHttp:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, _Killed):
            broken = True
        finally:
            try:
                # A peer that has gone cannot take what is still buffered: abort, or the close
                # would wait for a flush that never comes (and the socket outlive the server).
                if self.killed or broken:
                    writer.transport.abort()
                else:
                    writer.close()
                with contextlib.suppress(Exception):  # the peer may have gone already
                    await writer.wait_closed()
                # Forgotten only once closed: until then a shutdown still aborts it.
                self.writers.discard(writer)
            finally:
                with self.state.received:
                    self.state.open_connections -= 1
                    self.state.received.notify_all()

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, str, dict[str, str], bytes] | None:
        first = await reader.read(1)
        if not first:
            return None
        if first == b"\x16":  # a TLS ClientHello: answer in plain text so the handshake fails
            raise _NotHttp
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY_BYTES:
            return None
        body = await reader.readexactly(length) if length else b""
        return parts[0].upper(), parts[1].split("?", 1)[0], headers, body

    async def _dispatch(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; return False when the connection must close afterwards."""
        if path.startswith("/_fake/"):
            return await self._control(method, path, body, writer)
        if path == "/v1/models" and method == "GET":
            models = {"object": "list", "data": [_model_entry(self.model)]}
            await self._send_json(writer, 200, models)
            return True
        if path != "/v1/chat/completions":
            await self._send_error(writer, 404, "invalid_request_error", "not_found", path)
            return True
        if method != "POST":
            await self._send_error(writer, 405, "invalid_request_error", "bad_method", method)
            return True
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            await self._send_error(writer, 400, "invalid_request_error", "bad_json", str(exc))
            return True
        self.state.record(request)
        problem = request_problem(request)
        if problem:
            await self._send_error(writer, 400, "invalid_request_error", "invalid_request", problem)
            return True
        return await self._complete(request, self.state.next_fault(), writer)

    async def _control(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """``POST /_fake/inject {"faults": [...]}``, ``POST /_fake/mode {"mode": m}``,
        ``GET /_fake/requests``: lets a test steer a subprocess server."""
        try:
            payload = json.loads(body) if body else {}
            if path == "/_fake/inject" and method == "POST":
                faults = [str(f) for f in payload["faults"]]
                _check_faults(faults)
                self.state.faults.extend(faults)
            elif path == "/_fake/mode" and method == "POST":
                _check_faults([str(payload["mode"])])
                self.state.mode = str(payload["mode"])
            elif not (path == "/_fake/requests" and method == "GET"):
                raise ValueError(f"unknown control endpoint {method} {path}")
        except (ValueError, KeyError, TypeError) as exc:
            await self._send_error(writer, 400, "invalid_request_error", "bad_control", str(exc))
            return True
        await self._send_json(writer, 200, {"requests": self.state.requests})
        return True

    # -- chat completions ---------------------------------------------------------------------

    async def _complete(self, request: JsonDict, fault: str, writer: asyncio.StreamWriter) -> bool:
        if fault == "stall":
            await self.stopped.wait()
            return False
        if fault == "drop":
            return False
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            writer.transport.abort()
            return False
        if fault in _ERRORS:
            status, kind, code, message = _ERRORS[fault]
            extra = {"retry-after": _seconds(self.retry_after_s)} if fault == "429" else {}
            await self._send_error(writer, status, kind, code, message, extra)
            return True
        if fault == "huge_error":
            message = "x" * self.huge_error_bytes
            await self._send_error(writer, 500, "server_error", "internal_error", message)
            return True
        if fault == "endless_body":
            await self._endless(request, writer)
            return False
        answer = self.answer(request) if callable(self.answer) else self.answer
        if fault == "empty_content":
            answer = ""
        calls = self._tool_calls(request)
        if request.get("stream"):
            return await self._stream(request, answer, fault, writer, calls)
        body = self._completion_body(request, answer, fault, calls)
        data = json.dumps(body, separators=(",", ":")).encode()
        if fault == "malformed_json":
            data = data[: max(len(data) // 2, 1)]
        elif fault == "non_utf8":
            data = data.replace(b'"content":"', b'"content":"\xff\xfe', 1)
        head = _head(200, {"content-type": "application/json", "content-length": str(len(data))})
        if fault == "stall_after_first_chunk":
            writer.write(head + data[: len(data) // 2])
            await writer.drain()
            await self.stopped.wait()
            return False
        if fault == "kill":
            writer.write(head + data[: len(data) // 2])
            await writer.drain()
            await self._die()
        if fault == "slow_trickle":
            await self._trickle(writer, head + data)
            return True
        writer.write(head + data)
        await writer.drain()
        return True

    def _tool_calls(self, request: JsonDict) -> list[JsonDict]:
        """The scripted calls for this request, in OpenAI's shape (arguments as text)."""
        script = self.tool_calls(request) if callable(self.tool_calls) else self.tool_calls
        calls = []
        for i, call in enumerate(script or ()):
            arguments = call.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, separators=(",", ":"))
            call_id = call.get("id") or f"call_{len(self.state.requests)}_{i}"
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call["name"], "arguments": arguments},
                }
            )
        return calls

    def _completion_body(
        self, request: JsonDict, answer: str, fault: str, calls: list[JsonDict] | None = None
    ) -> JsonDict:
        tokens = _tokens(answer)
        finish = "length" if fault == "length" else "stop"
        message: JsonDict = {"role": "assistant", "content": answer}
        if calls:
            tokens = [t for c in calls for t in _tokens(c["function"]["arguments"])]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls" if fault != "length" else finish
        choice: JsonDict = {
            "index": 0,
            "message": message,
            "finish_reason": finish,
            "logprobs": self._logprobs(request, tokens) if not calls else None,
        }
        body: JsonDict = {
            "id": f"chatcmpl-fake{len(self.state.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.get("model") or self.model),
            "choices": [choice],
        }
        if fault != "no_usage":
            prompt = _prompt_tokens(request)
            body["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": len(tokens),
                "total_tokens": prompt + len(tokens),
            }
        return body

    def _logprobs(self, request: JsonDict, tokens: list[str]) -> JsonDict | None:
        if not (self.logprobs and request.get("logprobs")):
            return None
        entries = [
            {
                "token": token,
                "logprob": self.token_logprob,
                "bytes": list(token.encode()),
                "top_logprobs": [],
            }
            for token in tokens
        ]
        return {"content": entries}

    async def _stream(
        self,
        request: JsonDict,
        answer: str,
        fault: str,
        writer: asyncio.StreamWriter,
        calls: list[JsonDict] | None = None,
    ) -> bool:
        head = _head(
            200,
            {
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                "transfer-encoding": "chunked",
            },
        )
        events = [_sse(e) for e in self._stream_events(request, answer, fault, calls)]
        events.append(b"data: [DONE]\n\n")
        if fault == "malformed_json":
            events[1] = b'data: {"id": "chatcmpl-fake", "choices": [\n\n'
        elif fault == "non_utf8":
            events[1] = events[1].replace(b'"content":"', b'"content":"\xff\xfe', 1)
        if fault in ("stall_after_first_chunk", "kill"):
            writer.write(head + _chunk(events[0]))
            await writer.drain()
            if fault == "kill":
                await self._die()
            await self.stopped.wait()
            return False
        payload = head + b"".join(_chunk(e) for e in events) + b"0\r\n\r\n"
        if fault == "slow_trickle":
            await self._trickle(writer, payload)
        else:
            writer.write(payload)
            await writer.drain()
        return True

    def _stream_events(
        self, request: JsonDict, answer: str, fault: str, calls: list[JsonDict] | None = None
    ) -> list[JsonDict]:
        model = str(request.get("model") or self.model)
        base = {
            "id": f"chatcmpl-fake{len(self.state.requests)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        tokens = _tokens(answer)
        finish = "length" if fault == "length" else "stop"
        if calls:
            events = [{**base, "choices": [{"index": 0, "delta": d}]} for d in self._deltas(calls)]
            tokens = [t for c in calls for t in _tokens(c["function"]["arguments"])]
            finish = "tool_calls" if fault != "length" else finish
        else:
            events = [
                {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            ]
            for token in tokens or [""]:
                choice: JsonDict = {"index": 0, "delta": {"content": token}, "finish_reason": None}
                logprobs = self._logprobs(request, [token])
                if logprobs is not None:
                    choice["logprobs"] = logprobs
                events.append({**base, "choices": [choice]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        options = request.get("stream_options") or {}
        if fault != "no_usage" and isinstance(options, dict) and options.get("include_usage"):
            prompt = _prompt_tokens(request)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": len(tokens),
                "total_tokens": prompt + len(tokens),
            }
            events.append({**base, "choices": [], "usage": usage})
        return events

    def _deltas(self, calls: list[JsonDict]) -> list[JsonDict]:
        """The ``delta`` objects OpenAI streams for ``calls``: per call a first delta with its
        index, id, type and name (and empty arguments), then its arguments in pieces."""
        step = self.tool_call_chunk_chars
        per_call: list[list[JsonDict]] = []
        for index, call in enumerate(calls):
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            text = call["function"]["arguments"]
            pieces = [
                {"index": index, "function": {"arguments": text[i : i + step]}}
                for i in range(0, len(text), step)
            ]
            per_call.append([head, *pieces])
        if self.interleave_tool_calls:
            ordered = [d for group in itertools.zip_longest(*per_call) for d in group if d]
        else:
            ordered = [d for group in per_call for d in group]
        first: JsonDict = {"role": "assistant", "content": None, "tool_calls": [ordered[0]]}
        return [first, *({"tool_calls": [d]} for d in ordered[1:])]

    async def _endless(self, request: JsonDict, writer: asyncio.StreamWriter) -> None:
        """A ``200`` whose body never ends: SSE events for a stream, else one JSON body that
        keeps growing; until the client hangs up or the server stops."""
        stream = bool(request.get("stream"))
        kind = "text/event-stream" if stream else "application/json"
        head = _head(200, {"content-type": kind, "transfer-encoding": "chunked"})
        if stream:
            piece = _sse({"choices": [{"index": 0, "delta": {"content": "x" * 200}}]}) * 200
        else:
            piece = b" " * 65536
        opening = b'{"id":"chatcmpl-endless","choices":[' if not stream else b""
        writer.write(head + _chunk(opening or piece))
        while not self.stopped.is_set():  # a ConnectionError ends it: the client hung up
            writer.write(_chunk(piece))
            await writer.drain()
            self.state.endless_bytes_sent += len(piece)

    # -- socket-level behaviour ---------------------------------------------------------------

    async def _trickle(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        step = max(self.trickle_bytes, 1)
        for start in range(0, len(data), step):
            writer.write(data[start : start + step])
            await writer.drain()
            if start + step < len(data):
                await asyncio.sleep(self.trickle_delay_s)

    async def _die(self) -> None:
        if self.die_on_kill:
            os.kill(os.getpid(), signal.SIGKILL)
        self.killed = True
        if self.server is not None:
            self.server.close()
        for other in list(self.writers):
            other.transport.abort()
        raise _Killed

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: JsonDict,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "content-length": str(len(data))}
        writer.write(_head(status, {**headers, **(extra or {})}) + data)
        await writer.drain()

    async def _send_error(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        kind: str,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        await self._send_json(writer, status, error, extra)


_ROLES: Final = frozenset({"system", "user", "assistant", "tool", "developer"})


def request_problem(request: JsonDict) -> str:
    """What OpenAI would reject in a chat-completion request body ("" when nothing): message
    roles and shapes, content parts, tool results that answer no earlier call, tools, and a
    ``tool_choice`` or ``parallel_tool_calls`` without tools or naming a tool not offered.

    Example:
        >>> request_problem({"model": "m", "messages": [{"role": "tool", "content": "4"}]})
        "messages[0]: a 'tool' message needs a tool_call_id"
    """
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty array"
    called: set[str] = set()
    for i, message in enumerate(messages):
        problem = _message_problem(message, called)
        if problem:
            return f"messages[{i}]: {problem}"
    tools = request.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return "tools must be a non-empty array"
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not (isinstance(tool, dict) and tool.get("type") == "function"):
                return f"tools[{i}]: type must be 'function'"
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                return f"tools[{i}]: function.name is required"
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                return f"tools[{i}]: function.parameters must be a JSON Schema object"
            names.append(function["name"])
    choice = request.get("tool_choice")
    if choice is not None:
        if not names:
            return "tool_choice is only allowed when tools are specified"
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if choice.get("type") != "function" or name not in names:
                return f"tool_choice names {name!r}, which is not among the tools"
        elif choice not in ("none", "auto", "required"):
            return f"tool_choice {choice!r} is not none, auto, required or a named function"
    if request.get("parallel_tool_calls") is not None and not names:
        return "parallel_tool_calls is only allowed when tools are specified"
    return ""


def _message_problem(message: object, called: set[str]) -> str:
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        return f"role must be one of {sorted(_ROLES)}"
    role = message["role"]
    content = message.get("content")
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list) or not calls:
            return "only an assistant message carries tool_calls, as a non-empty array"
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not (
                isinstance(call, dict)
                and isinstance(call.get("id"), str)
                and call.get("type") == "function"
                and isinstance(function, dict)
                and isinstance(function.get("name"), str)
                and isinstance(function.get("arguments"), str)
            ):
                return "a tool call needs id, type 'function' and function {name, arguments}"
            called.add(call["id"])
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            return "a 'tool' message needs a tool_call_id"
        if call_id not in called:
            return f"tool_call_id {call_id!r} answers no earlier assistant tool call"
    if content is None:
        return "" if calls else "content is required"
    if isinstance(content, str):
        return ""
    if not isinstance(content, list):
        return "content must be a string or an array of content parts"
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        url = part.get("image_url") if isinstance(part, dict) else None
        if kind == "image_url" and isinstance(url, dict) and isinstance(url.get("url"), str):
            continue
        return f"a content part must be text or image_url, got {part!r:.80}"
    return ""


def _model_entry(model: str) -> JsonDict:
    return {"id": model, "object": "model", "created": 0, "owned_by": "paxis-fake"}


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _sse(event: JsonDict) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class FakeUpstream:
    """An OpenAI-compatible server on 127.0.0.1 in a background thread, with fault injection.

    Args:
        answer: The assistant's answer, or a function of the request JSON returning it.
        model: The model id ``/v1/models`` lists (answers echo the request's ``model``).
        logprobs: Return per-token logprobs when a request asks for them.
        token_logprob: The natural-log probability given to every generated token.
        mode: The fault applied when no injected fault is queued (see :data:`FAULTS`).
        retry_after_s: The ``Retry-After`` a ``429`` carries.
        trickle_bytes: Bytes per write in ``slow_trickle``.
        trickle_delay_s: Pause between writes in ``slow_trickle``.
        host: The interface to bind; loopback only by default.
        port: The port to bind; ``0`` picks a free one.
        tool_calls: Scripted tool calls (a list, or a function of the request returning one
            or None): the answer calls them (see the module doc).
        tool_call_chunk_chars: Characters of arguments per streamed tool-call delta.
        interleave_tool_calls: Stream the pieces of several calls interleaved.
        huge_error_bytes: The size of the ``huge_error`` fault's error message.

    Example:
        >>> import httpx
        >>> with FakeUpstream(answer="pong") as up:
        ...     up.mode = "429"
        ...     r = httpx.post(f"{up.base_url}/chat/completions",
        ...                    json={"model": "m", "messages": [{"role": "user", "content": "p"}]})
        >>> r.status_code, r.headers["retry-after"], len(up.requests)
        (429, '1', 1)
    """

    def __init__(
        self,
        answer: Answer = "ok",
        *,
        model: str = "fake-model",
        logprobs: bool = True,
        token_logprob: float = -0.05,
        mode: str = "ok",
        retry_after_s: float = 1.0,
        trickle_bytes: int = 16,
        trickle_delay_s: float = 0.02,
        host: str = "127.0.0.1",
        port: int = 0,
        tool_calls: ToolCalls | None = None,
        tool_call_chunk_chars: int = 8,
        interleave_tool_calls: bool = False,
        huge_error_bytes: int = 20_000_000,
    ) -> None:
        _check_faults([mode])
        self.host = host
        self._requested_port = port
        self._state = _State(mode)
        self._server = _Server(
            answer=answer,
            model=model,
            logprobs=logprobs,
            token_logprob=token_logprob,
            retry_after_s=retry_after_s,
            trickle_bytes=trickle_bytes,
            trickle_delay_s=trickle_delay_s,
            state=self._state,
            die_on_kill=False,
            tool_calls=tool_calls,
            tool_call_chunk_chars=tool_call_chunk_chars,
            interleave_tool_calls=interleave_tool_calls,
            huge_error_bytes=huge_error_bytes,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Bind and start serving; returns self. Raises OSError when the port is taken."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already started")
        loop = asyncio.new_event_loop()
        ready: list[int | BaseException] = []
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                port = loop.run_until_complete(self._server.start(self.host, self._requested_port))
                ready.append(port)
            except BaseException as exc:  # reported to the starting thread
                ready.append(exc)
                started.set()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._server.drain_late_connections())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="paxis-fake-upstream", daemon=True)
        thread.start()
        started.wait()
        outcome = ready[0]
        if isinstance(outcome, BaseException):
            thread.join()
            loop.close()
            raise outcome
        self._loop, self._thread, self._port = loop, thread, outcome
        return self

    def stop(self) -> None:
        """Close every connection (stalled ones included), stop listening, join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        future = asyncio.run_coroutine_threadsafe(self._server.shutdown(), loop)
        future.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._port is None:
            raise RuntimeError("FakeUpstream is not started; use it as a context manager")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what an OpenAI client takes as ``base_url``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def mode(self) -> str:
        """The fault applied when no injected fault is queued."""
        return self._state.mode

    @mode.setter
    def mode(self, value: str) -> None:
        _check_faults([value])
        self._state.mode = value

    def inject(self, *faults: str) -> None:
        """Queue faults for the next chat-completion requests, one fault per request."""
        _check_faults(faults)
        self._state.faults.extend(faults)

    @property
    def requests(self) -> list[JsonDict]:
        """The JSON bodies of the chat-completion requests received so far, oldest first."""
        return list(self._state.requests)

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until ``count`` chat-completion requests have arrived; False on timeout.

        From async code: ``await asyncio.to_thread(up.wait_for_requests, 1)``.
        """
        with self._state.received:
            return self._state.received.wait_for(
                lambda: len(self._state.requests) >= count, timeout=timeout_s
            )

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted so far (keep-alive reuses one)."""
        return self._state.connections

    @property
    def open_connections(self) -> int:
        """How many accepted connections are still open (the client has not closed them)."""
        return self._state.open_connections

    def wait_for_open_connections(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until at most ``count`` connections are open; False on timeout."""
        with self._state.received:
            return self._state.received.wait_for(
                lambda: self._state.open_connections <= count, timeout=timeout_s
            )

    @property
    def endless_bytes_sent(self) -> int:
        """Body bytes the ``endless_body`` fault got into the socket before the client left."""
        return self._state.endless_bytes_sent

    @property
    def killed(self) -> bool:
        """True once a ``kill`` fault has shut the server down."""
        return self._server.killed


class FakeUpstreamProcess:
    """:class:`FakeUpstream` in a child process, so that the ``kill`` fault really kills it.

    Args:
        answer: The assistant's answer (a string: it crosses a process boundary).
        model: The model id served.
        mode: The default fault mode.
        inject: Faults queued from the start.
        retry_after_s: The ``Retry-After`` a ``429`` carries.
        start_timeout_s: How long to wait for the child to print its port.

    Example:
        >>> import httpx
        >>> with FakeUpstreamProcess(answer="hi") as up:
        ...     up.inject("kill")
        ...     body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        ...     try:
        ...         httpx.post(f"{up.base_url}/chat/completions", json=body)
        ...     except httpx.HTTPError as exc:
        ...         failure = type(exc).__name__
        ...     status = up.wait(timeout_s=10)
        >>> failure, status
        ('RemoteProtocolError', -9)
    """

    def __init__(
        self,
        answer: str = "ok",
        *,
        model: str = "fake-model",
        mode: str = "ok",
        inject: Sequence[str] = (),
        retry_after_s: float = 1.0,
        start_timeout_s: float = 20.0,
    ) -> None:
        _check_faults([mode, *inject])
        self.answer = answer
        self.model = model
        self.mode = mode
        self.initial_faults = tuple(inject)
        self.retry_after_s = retry_after_s
        self.start_timeout_s = start_timeout_s
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None

    def start(self) -> FakeUpstreamProcess:
        """Spawn the child and wait until it listens."""
        command = [
            sys.executable,
            "-m",
            "paxis_router.testing.upstream",
            "--port",
            "0",
            "--print-port",
            "--answer",
            self.answer,
            "--model",
            self.model,
            "--mode",
            self.mode,
            "--retry-after",
            str(self.retry_after_s),
        ]
        for fault in self.initial_faults:
            command += ["--inject", fault]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self._proc = proc
        assert proc.stdout is not None  # PIPE was requested
        line = _read_line(proc.stdout, self.start_timeout_s)
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"fake upstream subprocess did not report its port (got {line!r})")
        self._port = int(line)
        return self

    def stop(self) -> None:
        """Terminate the child (if still alive), reap it and close its pipe."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> FakeUpstreamProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeUpstreamProcess is not started; use it as a context manager")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def inject(self, *faults: str) -> None:
        """Queue faults in the child for its next chat-completion requests."""
        _check_faults(faults)
        self._post("/_fake/inject", {"faults": list(faults)})

    def set_mode(self, mode: str) -> None:
        """Change the child's default fault mode."""
        _check_faults([mode])
        self._post("/_fake/mode", {"mode": mode})

    @property
    def requests(self) -> list[JsonDict]:
        """The chat-completion request bodies the child received."""
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/_fake/requests") as r:
            return list(json.loads(r.read())["requests"])

    def poll(self) -> int | None:
        """The child's exit status, or None while it runs (``-9`` after SIGKILL)."""
        return self._running().poll()

    def wait(self, timeout_s: float) -> int:
        """Wait for the child to exit and return its status."""
        return self._running().wait(timeout=timeout_s)

    def _running(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError("FakeUpstreamProcess is not started")
        return self._proc

    def _post(self, path: str, payload: JsonDict) -> None:
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}{path}",
            data=json.dumps(payload).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request) as response:
            response.read()


def _read_line(stream: IO[str], timeout_s: float) -> str:
    """Read one line from a pipe, giving up after ``timeout_s`` (the child may hang)."""
    readable, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() if readable else ""


async def _serve_forever(args: argparse.Namespace) -> None:
    state = _State(args.mode)
    state.faults.extend(args.inject)
    server = _Server(
        answer=args.answer,
        model=args.model,
        logprobs=True,
        token_logprob=-0.05,
        retry_after_s=args.retry_after,
        trickle_bytes=16,
        trickle_delay_s=0.02,
        state=state,
        die_on_kill=True,
    )
    port = await server.start(args.host, args.port)
    if args.print_port:
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fake upstream until SIGTERM: ``python -m paxis_router.testing.upstream --port 0``."""
    parser = argparse.ArgumentParser(prog="python -m paxis_router.testing.upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answer", default="ok")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--mode", default="ok", choices=sorted(FAULTS))
    parser.add_argument("--inject", action="append", default=[], choices=sorted(FAULTS))
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--print-port", action="store_true", help="print the bound port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
