"""A worker for any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp, TGI, Ollama, ...

It speaks the wire protocol itself (``POST {base_url}/chat/completions``, JSON or SSE) with the
stdlib ``json``: no SDK in the request path. A plain ``http://`` server (vLLM on the local
network) is called over a lean keep-alive HTTP/1.1 pool on asyncio streams
(``paxis_router.workers._http1``); ``https://``, a proxy from the environment, or a caller's
``http_client`` go through one shared ``httpx.AsyncClient`` per event loop. httpx is imported
lazily, so ``import paxis_router`` stays light. Nothing is retried here: retrying is the
router's job. Failures are mapped onto paxis_router's tree:

========================================== ==================================================
server / network                            raised
========================================== ==================================================
timeout                                    ``WorkerTimeout``
connection reset, 429, 5xx                 ``WorkerUnavailable(transient=True)``
connection refused, DNS or TLS failure     ``WorkerUnavailable(transient=False)``
401 / 403 / 404 (model withdrawn)          ``WorkerUnavailable(transient=False)``
400 "context length" / "maximum context"   ``ContextWindowExceeded``
other 4xx, a body that is not JSON         ``WorkerError``
a body over ``max_response_bytes``         ``WorkerError`` (the rest is not read)
an image part, ``accepts_images=False``    ``UnsupportedContent`` (not sent; zero cost)
========================================== ==================================================

Every field of the request a tier must see is sent: the messages in OpenAI's shape (content
parts, assistant ``tool_calls``, ``tool`` results), ``tools``, ``tool_choice``,
``parallel_tool_calls``, ``response_format``, ``stop``, ``seed``, ``top_p``, the penalties and
``user``. Tool calls come back in ``Completion.tool_calls`` (with ``finish_reason
"tool_calls"``), also from a stream, whose tool-call deltas are assembled by index.

Bad output is a value, not an exception: empty content comes back as ``""`` (a NonEmptyVerifier
rejects it), a missing ``usage`` as ``usage=None`` (cost unknown), ``finish_reason="length"`` is
kept, tool-call arguments that are not JSON are kept as sent (a ToolCallVerifier rejects them).

Example:
    >>> worker = OpenAICompatWorker(
    ...     "local:qwen-ft-v3", "qwen-ft-v3", "http://127.0.0.1:8000/v1", logprobs=True
    ... )
    >>> worker.name, worker.destination
    ('local:qwen-ft-v3', 'local')
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from paxis_router.errors import (
    ContextWindowExceeded,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.types import Completion, Usage
from paxis_router.workers._errors import connection_gone, retry_after_s, root_message
from paxis_router.workers._http1 import (
    BodyTooLarge,
    ConnectTimeout,
    Http1Pool,
    ProtocolError,
    ReadTimeout,
    StatusError,
    acquire,
)
from paxis_router.workers._loop_guard import LoopGuard
from paxis_router.workers._wire import (
    ToolCallAssembler,
    refuse_images,
    request_params,
    tool_calls_of,
    wire_message,
)
from paxis_router.workers.destination import destination_for_url

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping

    import httpx

    from paxis_router.pricing import Price
    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest

logger = logging.getLogger(__name__)

#: Skill metadata key naming the LoRA adapter a local worker should use for the skill.
ADAPTER_KEY = "paxis-adapter"

_CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
)

JsonObject = dict[str, Any]  # Any: OpenAI wire JSON is free-form

#: Default cap on a response body (streamed or not): far above any real answer (32k tokens
#: with logprobs stream as ~10 MB), low enough that a server streaming without end fails fast.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Default cap on the bytes of an error body read and kept for the error message.
MAX_ERROR_BYTES = 4096


class OpenAICompatWorker:
    """Calls ``POST {base_url}/chat/completions`` on an OpenAI-compatible server.

    Args:
        name: the tier's stable name (``"local:qwen-ft-v3"``); ledger rows key on it.
        model: the model id the server serves (for vLLM, the base model or a LoRA adapter name).
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: sent as a bearer token; ``None`` sends the placeholder ``"EMPTY"`` (vLLM's
            convention) — the environment's OPENAI_API_KEY is never sent to a local server.
        price: how a call is priced (a ``GpuHourPrice`` for a local GPU); None = unknown.
        destination: ``"local"`` or ``"provider:region"``, for the action gate; default derived
            from ``base_url``'s host: ``"local"`` for loopback, else ``"remote:<host>"`` (see
            ``paxis_router.workers.destination``).
        timeout_s: seconds a call may take, waiting for a free connection included (a
            stream: until its response headers, then between two pieces); through httpx
            (``https://``, a proxy, a caller's client) each connect/read/write phase.
        logprobs: always ask for token logprobs (also asked when ``request.logprobs``).
        connect_timeout_s: how long the TCP connect may take (default: within ``timeout_s``); a
            tier's ``resilience.connect_timeout_s`` sets it from a policy file.
        read_timeout_s: the longest silence from the server while it answers (default: only
            ``timeout_s`` bounds it): a server that stalls mid-answer fails fast while a slow
            but steady one may use all of ``timeout_s``. A tier's ``resilience.read_timeout_s``
            sets it from a policy file.
        http_client: an ``httpx.AsyncClient`` to use (tests pass one on a MockTransport);
            None builds one per event loop with ``max_connections`` keep-alive connections.
        extra_body: extra JSON fields merged into each request body (e.g. vLLM's ``top_k``).
        max_context_tokens: the model's context window, when the router should know it.
        skill_adapters: when the selected skill names a LoRA adapter (its SKILL.md metadata
            ``paxis-adapter``), request that adapter as the model — vLLM serves each adapter
            loaded with ``--lora-modules name=path`` under its name.
        adapters: the adapter names the server serves; a skill naming another one goes to
            ``model``, with a warning. None (default) trusts any name a skill gives.
        adapter_key: the skill metadata key naming the adapter (default ``paxis-adapter``).
        max_connections: the most calls in flight to the server at once (and the size of the
            keep-alive pool); further calls wait their turn. vLLM batches what it receives, so
            keep this at or above its ``--max-num-seqs``.
        accepts_images: the served model reads image parts (a vision model). False (default):
            a request carrying an image is refused before any call with
            ``UnsupportedContent`` (zero cost), and the router tries the next tier.
        max_response_bytes: the most bytes of a response body (a stream's in total) read
            before the call fails with a WorkerError (default 16 MiB).
        max_error_bytes: the most bytes of an error response's body read and kept for the
            error message (default 4 KiB); the rest is left unread.

    Example:
        >>> OpenAICompatWorker("local:w", "w", "http://127.0.0.1:8000/v1").model
        'w'
    """

    def __init__(
        self,
        name: str,
        model: str,
        base_url: str,
        api_key: str | None = None,
        price: Price | None = None,
        destination: str | None = None,
        timeout_s: float = 60.0,
        logprobs: bool = False,
        http_client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, object] | None = None,
        max_context_tokens: int | None = None,
        skill_adapters: bool = True,
        max_connections: int = 1000,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        adapters: Iterable[str] | None = None,
        adapter_key: str = ADAPTER_KEY,
        accepts_images: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_error_bytes: int = MAX_ERROR_BYTES,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.name = name
        self.model = model
        self.base_url = base_url
        self.price = price
        self.destination = destination or destination_for_url(base_url)
        self.timeout_s = timeout_s
        self.logprobs = logprobs
        self.extra_body = dict(extra_body) if extra_body else None
        self.max_context_tokens = max_context_tokens
        self.skill_adapters = skill_adapters
        self.adapters: frozenset[str] | None = None if adapters is None else frozenset(adapters)
        self.adapter_key = adapter_key
        self.max_connections = max_connections
        if connect_timeout_s is not None and connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be > 0, got {connect_timeout_s}")
        self.connect_timeout_s = connect_timeout_s
        if read_timeout_s is not None and read_timeout_s <= 0:
            raise ValueError(f"read_timeout_s must be > 0, got {read_timeout_s}")
        self.read_timeout_s = read_timeout_s
        for label, cap in (
            ("max_response_bytes", max_response_bytes),
            ("max_error_bytes", max_error_bytes),
        ):
            if cap < 1:
                raise ValueError(f"{label} must be >= 1, got {cap}")
        self.accepts_images = accepts_images
        self.max_response_bytes = max_response_bytes
        self.max_error_bytes = max_error_bytes
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {
            "authorization": f"Bearer {api_key or 'EMPTY'}",
            "content-type": "application/json",
            "accept": "application/json",
        }
        self._pool: Http1Pool | None = None
        if http_client is None and _plain_http(base_url):
            self._pool = Http1Pool(
                base_url,
                f"Authorization: Bearer {api_key or 'EMPTY'}\r\n"
                "Content-Type: application/json\r\nUser-Agent: paxis-router\r\n",
                max_connections,
                connect_timeout_s,
                read_timeout_s,
            )
        self._http_client = http_client
        self._client: httpx.AsyncClient | None = http_client
        self._client_guard = LoopGuard()
        # httpcore scans its whole pool on every request and every queued request: calls wait
        # here (O(1)) instead of in its queue, so its queue stays empty.
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAICompatWorker(name={self.name!r}, model={self.model!r}, url={self.base_url!r})"
        )

    async def _client_for_loop(self) -> httpx.AsyncClient:
        # A connection pool belongs to one event loop: our client is rebuilt when the loop
        # changes, and closed when its loop shuts down. A caller's http_client is always reused
        # (and closed only by aclose).
        loop = asyncio.get_running_loop()
        if self._client_guard.loop is not loop or self._client is None:
            if self._http_client is None:
                import httpx

                limits = httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                )
                client = httpx.AsyncClient(
                    timeout=httpx.Timeout(
                        self.timeout_s,
                        connect=self.connect_timeout_s or self.timeout_s,
                        read=min(self.read_timeout_s or self.timeout_s, self.timeout_s),
                    ),
                    limits=limits,
                    follow_redirects=False,
                )

                async def close() -> None:
                    await client.aclose()

            else:
                client = self._http_client

                async def close() -> None:
                    pass

            self._client = client
            self._slots = asyncio.Semaphore(self.max_connections)
            await self._client_guard.bind(close)
        assert self._client is not None
        return self._client

    def model_for(self, skill: Skill | None) -> str:
        """The served model to request: the skill's LoRA adapter when it names one (and the
        server serves it, when ``adapters`` was given), else ``model``."""
        if not self.skill_adapters or skill is None:
            return self.model
        adapter = skill.metadata.get(self.adapter_key)
        if not adapter:
            return self.model
        if self.adapters is not None and adapter not in self.adapters:
            logger.warning(
                "skill %s names adapter %r, which %s does not serve (it serves %s); using the "
                "base model",
                skill.id,
                adapter,
                self.name,
                ", ".join(sorted(self.adapters)) or "none",
            )
            return self.model
        return adapter

    def _body(self, request: ChatRequest, skill: Skill | None) -> JsonObject:
        if not self.accepts_images:
            refuse_images(request, self.name, "is declared text-only (accepts_images=False)")
        body: JsonObject = {
            "model": self.model_for(skill),
            "messages": [wire_message(m) for m in request.messages],
        }
        body.update(request_params(request))
        if self.logprobs or request.logprobs:
            body["logprobs"] = True
        if self.extra_body:
            body.update(self.extra_body)
        return body

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        """One chat completion; raises a WorkerError subclass when the call fails."""
        content = json.dumps(self._body(request, skill)).encode()
        t0 = time.perf_counter()
        if self._pool is not None:
            try:
                reply, data = await self._pool.post(
                    "/chat/completions",
                    content,
                    self.timeout_s,
                    self.max_response_bytes,
                    self.max_error_bytes,
                )
            except (OSError, ProtocolError, BodyTooLarge) as exc:  # TimeoutError: an OSError
                raise self._map_transport(exc, request) from exc
            status, reason = reply.status, reply.reason
            headers: Mapping[str, str] = reply.headers
        else:
            status, reason, headers, data = await self._post_httpx(content, request)
        latency_s = time.perf_counter() - t0
        if not 200 <= status < 300:
            cause = StatusError(status, reason, data)
            raise self._map_status(cause, headers, request.request_id) from cause
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._not_json(request, exc) from exc
        return self._to_completion(body, request, latency_s)

    async def _post_httpx(
        self, content: bytes, request: ChatRequest
    ) -> tuple[int, str, Mapping[str, str], bytes]:
        import httpx

        client = await self._client_for_loop()
        assert self._slots is not None
        try:
            await acquire(self._slots, self.timeout_s)
        except TimeoutError as exc:
            raise self._map_transport(exc, request) from exc
        try:
            async with client.stream(
                "POST", self._url, content=content, headers=self._headers
            ) as response:
                ok = 200 <= response.status_code < 300
                data = await _read_capped(
                    response.aiter_bytes(),
                    self.max_response_bytes if ok else self.max_error_bytes,
                    fail=ok,
                )
        except (httpx.HTTPError, BodyTooLarge) as exc:
            raise self._map_transport(exc, request) from exc
        finally:
            self._slots.release()
        return response.status_code, response.reason_phrase, response.headers, data

    async def stream(
        self, request: ChatRequest, skill: Skill | None
    ) -> AsyncGenerator[str | Completion, None]:
        """Stream one chat completion: its text deltas as they arrive, then the whole
        Completion (content, tool calls, usage when the server reports it, finish reason,
        logprobs). Tool calls are not yielded as deltas: they come whole in the Completion.

        Raises the same WorkerError subclasses as ``complete``, also after deltas were yielded
        (a connection lost mid-stream is ``WorkerUnavailable(transient=True)``).

        Example:
            >>> import asyncio
            >>> from paxis_router.testing.upstream import FakeUpstream
            >>> from paxis_router.types import ChatRequest
            >>> async def items(worker):
            ...     got = [item async for item in worker.stream(ChatRequest.from_text("?"), None)]
            ...     await worker.aclose()
            ...     return got
            >>> with FakeUpstream(answer="The answer is 42") as up:
            ...     got = asyncio.run(items(OpenAICompatWorker("local:w", "w", up.base_url)))
            >>> got[:-1], got[-1].content, got[-1].usage.completion_tokens
            (['The', ' answer', ' is', ' 42'], 'The answer is 42', 4)
        """
        body = self._body(request, skill)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        content = json.dumps(body).encode()
        parts: list[str] = []
        logprobs: list[float] = []
        calls = ToolCallAssembler()
        state: JsonObject = {"calls": calls}
        t0 = time.perf_counter()
        pending: list[bytes] = []  # the start of a line not ended yet
        whole: list[bytes] = []  # the body, kept until it proves to be SSE
        async with contextlib.aclosing(self._stream_bytes(content, request)) as chunks:
            async for chunk in chunks:
                if not parts and "sse" not in state:
                    whole.append(chunk)
                pending.append(chunk)
                if b"\n" not in chunk:
                    continue
                *lines, rest = b"".join(pending).split(b"\n")
                pending = [rest]
                for line in lines:
                    event = self._event(line, request, state)
                    if event is not None and (
                        delta := self._apply(event, state, logprobs, request)
                    ):
                        parts.append(delta)
                        yield delta
        event = self._event(b"".join(pending), request, state)
        if event is not None and (delta := self._apply(event, state, logprobs, request)):
            parts.append(delta)
            yield delta
        if "sse" not in state:  # a server that ignored "stream": true answered in one JSON body
            try:
                answer = json.loads(b"".join(whole))
            except (ValueError, UnicodeDecodeError) as exc:
                raise self._not_json(request, exc) from exc
            completion = self._to_completion(answer, request, time.perf_counter() - t0)
            if completion.content:
                yield completion.content
            yield completion
            return
        usage = state.get("usage")
        yield Completion(
            content="".join(parts),
            model=str(state.get("model") or self.model),
            usage=usage if isinstance(usage, Usage) else None,
            finish_reason=state.get("finish_reason"),
            token_logprobs=tuple(logprobs) if logprobs else None,
            latency_s=time.perf_counter() - t0,
            tool_calls=calls.result(),
        )

    async def _stream_bytes(
        self, content: bytes, request: ChatRequest
    ) -> AsyncGenerator[bytes, None]:
        """The SSE body's pieces as they arrive, at most ``max_response_bytes`` in all;
        failures as WorkerError subclasses."""
        total = 0
        async with contextlib.aclosing(self._stream_pieces(content, request)) as pieces:
            async for piece in pieces:
                total += len(piece)
                if total > self.max_response_bytes:
                    exc = BodyTooLarge(self.max_response_bytes)
                    raise self._map_transport(exc, request) from exc
                yield piece

    async def _stream_pieces(
        self, content: bytes, request: ChatRequest
    ) -> AsyncGenerator[bytes, None]:
        if self._pool is not None:
            try:
                async with (
                    self._pool.stream(
                        "/chat/completions", content, self.timeout_s, "text/event-stream"
                    ) as (reply, pieces),
                    contextlib.aclosing(pieces),
                ):
                    if not 200 <= reply.status < 300:
                        data = await _read_capped(pieces, self.max_error_bytes, fail=False)
                        cause = StatusError(reply.status, reply.reason, data)
                        rid = request.request_id
                        raise self._map_status(cause, reply.headers, rid) from cause
                    async for piece in pieces:
                        yield piece
            except (OSError, ProtocolError) as exc:  # TimeoutError is an OSError
                raise self._map_transport(exc, request) from exc
            return
        import httpx

        client = await self._client_for_loop()
        assert self._slots is not None
        headers = {**self._headers, "accept": "text/event-stream"}
        try:
            await acquire(self._slots, self.timeout_s)
        except TimeoutError as exc:
            raise self._map_transport(exc, request) from exc
        try:
            async with client.stream(
                "POST", self._url, content=content, headers=headers
            ) as response:
                if not 200 <= response.status_code < 300:
                    data = await _read_capped(
                        response.aiter_bytes(), self.max_error_bytes, fail=False
                    )
                    cause = StatusError(response.status_code, response.reason_phrase, data)
                    raise self._map_status(cause, response.headers, request.request_id) from cause
                async for piece in response.aiter_bytes():
                    yield piece
        except httpx.HTTPError as exc:
            raise self._map_transport(exc, request) from exc
        finally:
            self._slots.release()

    def _event(self, line: bytes, request: ChatRequest, state: JsonObject) -> JsonObject | None:
        """One SSE line -> its JSON event; None for comments, blank lines and ``[DONE]``."""
        line = line.strip()
        if not line.startswith(b"data:"):
            return None
        state["sse"] = True
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            return None
        try:
            event = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._not_json(request, exc) from exc
        if not isinstance(event, dict):
            raise self._invalid(request, f"a stream event that is {type(event).__name__}")
        if "error" in event:
            detail = _error_message(event)
            raise WorkerError(
                f"the server at {self.base_url} ended the stream with an error: {detail}",
                worker=self.name,
                request_id=request.request_id,
            )
        return event

    def _apply(
        self, event: JsonObject, state: JsonObject, logprobs: list[float], request: ChatRequest
    ) -> str:
        """Fold one ``chat.completion.chunk`` into ``state``; returns its text delta."""
        if event.get("model"):
            state["model"] = event["model"]
        raw_usage = event.get("usage")
        if isinstance(raw_usage, dict) and raw_usage.get("prompt_tokens") is not None:
            state["usage"] = self._usage(raw_usage, request)
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, dict):
            raise self._invalid(request, "a stream choice that is not an object")
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]
        logprobs.extend(self._logprobs(choice, request))
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return ""
        if delta.get("tool_calls"):
            state["calls"].add(delta["tool_calls"])
        text = delta.get("content")
        return text if isinstance(text, str) else ""

    def _not_json(self, request: ChatRequest, exc: ValueError | None) -> WorkerError:
        what = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        return WorkerError(
            f"the server at {self.base_url} returned a body that is {what}; check that "
            "base_url points at an OpenAI-compatible API (usually ending in /v1)",
            worker=self.name,
            request_id=request.request_id,
        )

    def _invalid(self, request: ChatRequest, what: str) -> WorkerError:
        return WorkerError(
            f"the server at {self.base_url} returned an invalid response ({what}); check that "
            "it is OpenAI-compatible",
            worker=self.name,
            request_id=request.request_id,
        )

    def _usage(self, raw: JsonObject, request: ChatRequest) -> Usage:
        try:
            return Usage(
                prompt_tokens=int(raw["prompt_tokens"]),
                completion_tokens=int(raw.get("completion_tokens") or 0),
            )
        except (TypeError, ValueError) as exc:
            raise self._invalid(request, f"usage {raw!r}") from exc

    def _logprobs(self, choice: JsonObject, request: ChatRequest) -> list[float]:
        raw = choice.get("logprobs")
        tokens = raw.get("content") if isinstance(raw, dict) else None
        if not tokens:
            return []
        try:
            return [float(t["logprob"]) for t in tokens]
        except (TypeError, KeyError, ValueError) as exc:
            raise self._invalid(request, "logprobs.content without numeric logprob") from exc

    def _to_completion(
        self,
        response: object,  # decoded JSON
        request: ChatRequest,
        latency_s: float,
    ) -> Completion:
        choices = response.get("choices") if isinstance(response, dict) else None
        if not isinstance(response, dict) or not isinstance(choices, list) or not choices:
            raise WorkerError(
                f"the server at {self.base_url} returned no choices "
                f"(got {type(response).__name__}); check that it is OpenAI-compatible",
                worker=self.name,
                request_id=request.request_id,
            )
        choice = choices[0]
        if not isinstance(choice, dict):
            raise self._invalid(request, "choices[0] is not an object")
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        raw_usage = response.get("usage")
        usage = None
        if isinstance(raw_usage, dict) and raw_usage.get("prompt_tokens") is not None:
            usage = self._usage(raw_usage, request)
        token_logprobs = self._logprobs(choice, request)
        finish_reason = choice.get("finish_reason")
        return Completion(
            content=content if isinstance(content, str) else "",
            model=str(response.get("model") or self.model),
            usage=usage,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            token_logprobs=tuple(token_logprobs) if token_logprobs else None,
            latency_s=latency_s,
            tool_calls=tool_calls_of(message.get("tool_calls"))
            if isinstance(message, dict)
            else (),
        )

    def _map_transport(self, exc: Exception, request: ChatRequest) -> WorkerError:
        """A network failure (httpx's, or the stdlib's from the lean pool) -> WorkerTimeout /
        WorkerUnavailable / WorkerError."""
        rid = request.request_id
        if isinstance(exc, BodyTooLarge):
            return WorkerError(
                f"the server at {self.base_url} sent a response body over {exc.limit} bytes "
                "(max_response_bytes); the rest was not read. Raise max_response_bytes if "
                "answers really are this large, else check the server",
                worker=self.name,
                request_id=rid,
            )
        if isinstance(exc, ConnectTimeout) or _is_httpx(exc, "ConnectTimeout"):
            return WorkerTimeout(
                f"could not connect to {self.base_url} within {self.connect_timeout_s} s "
                "(connect timeout); is the server overloaded or the address right?",
                worker=self.name,
                request_id=rid,
            )
        if isinstance(exc, ReadTimeout) or (
            self.read_timeout_s is not None and _is_httpx(exc, "ReadTimeout")
        ):
            return WorkerTimeout(
                f"{self.base_url} stopped sending for {self.read_timeout_s} s in the middle of "
                "an answer (read timeout); the server may be stalled or overloaded",
                worker=self.name,
                request_id=rid,
            )
        if isinstance(exc, TimeoutError) or _is_httpx(exc, "TimeoutException"):
            return WorkerTimeout(
                f"no answer from {self.base_url} within {self.timeout_s} s; raise timeout_s or "
                "check the server's load",
                worker=self.name,
                request_id=rid,
            )
        if isinstance(exc, OSError | ProtocolError) or _is_httpx(exc, "TransportError"):
            gone = connection_gone(exc)
            hint = "is the server running and the URL right?" if gone else "will retry"
            detail = str(exc) if isinstance(exc, ProtocolError) else root_message(exc)
            return WorkerUnavailable(
                f"cannot reach {self.base_url}: {detail}; {hint}",
                worker=self.name,
                request_id=rid,
                transient=not gone,
            )
        return WorkerError(
            f"call failed: {type(exc).__name__}: {exc}", worker=self.name, request_id=rid
        )

    def _map_status(
        self, error: StatusError, headers: Mapping[str, str], request_id: str
    ) -> WorkerError:
        status = error.status
        detail = _detail(error)
        if status == 429 or status >= 500:
            return WorkerUnavailable(
                f"HTTP {status} from {self.base_url}: {detail}",
                worker=self.name,
                request_id=request_id,
                transient=True,
                status_code=status,
                retry_after_s=retry_after_s(headers),
            )
        if status in (401, 403, 404):
            what = {401: "unauthorised", 403: "forbidden", 404: f"model {self.model!r} not found"}
            return WorkerUnavailable(
                f"HTTP {status} ({what[status]}) from {self.base_url}: {detail}; check the API key "
                "and that the server still serves this model",
                worker=self.name,
                request_id=request_id,
                transient=False,
                status_code=status,
            )
        if status == 400 and any(m in detail.lower() for m in _CONTEXT_MARKERS):
            return ContextWindowExceeded(
                f"prompt does not fit the context window of {self.model!r}: {detail}",
                worker=self.name,
                request_id=request_id,
            )
        return WorkerError(
            f"HTTP {status} from {self.base_url}: {detail}",
            worker=self.name,
            request_id=request_id,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections (a caller's http_client too).

        Connections are also closed when the event loop they were opened in shuts down
        (``asyncio.run`` and the like finalise them), so a worker called from one
        ``asyncio.run`` per call leaks none; call this to close them earlier."""
        if self._pool is not None:
            await self._pool.aclose()
        client, self._client = self._client, None
        await self._client_guard.aclose()  # closes our own client
        if client is not None and client is self._http_client:
            await client.aclose()


async def _read_capped(pieces: AsyncIterator[bytes], limit: int, *, fail: bool) -> bytes:
    """A body read up to ``limit`` bytes: over it, :class:`BodyTooLarge` when ``fail``, else
    the first ``limit`` bytes (the rest left unread)."""
    chunks: list[bytes] = []
    size = 0
    async for piece in pieces:
        chunks.append(piece)
        size += len(piece)
        if size > limit:
            if fail:
                raise BodyTooLarge(limit)
            return b"".join(chunks)[:limit]
    return b"".join(chunks)


def _error_message(body: object) -> str:
    """The ``error.message`` of an OpenAI error body (or the error string); "" if none."""
    if not isinstance(body, dict):
        return ""
    inner = body.get("error", body)
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])
    if isinstance(inner, str):
        return inner
    return ""


def _detail(error: StatusError) -> str:
    """What an error response says: its JSON error message, else its text, else the status."""
    try:
        detail = _error_message(json.loads(error.body))
    except (ValueError, UnicodeDecodeError):
        detail = error.body[:500].decode("utf-8", "replace").strip()
    return detail or str(error)


def _plain_http(base_url: str) -> bool:
    """True for an ``http://`` URL that no proxy from the environment applies to."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = getproxies()
    return not (proxies.get("http") or proxies.get("all")) or bool(proxy_bypass(parts.hostname))


def _is_httpx(exc: Exception, kind: str) -> bool:
    """``isinstance(exc, httpx.<kind>)`` without importing httpx when nothing has."""
    import sys

    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, getattr(httpx, kind))
