"""A worker for any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp, TGI, Ollama, ...

The openai SDK is imported lazily, inside the worker, on the first call: it is slow to import and
``import paxis_router`` must stay light. The SDK's own retries are off (``max_retries=0``):
retrying is the router's job. SDK exceptions are mapped onto paxis_router's tree:

========================================== ==================================================
server / network                            raised
========================================== ==================================================
timeout                                    ``WorkerTimeout``
connection reset, 429, 5xx                 ``WorkerUnavailable(transient=True)``
connection refused, DNS or TLS failure     ``WorkerUnavailable(transient=False)``
401 / 403 / 404 (model withdrawn)          ``WorkerUnavailable(transient=False)``
400 "context length" / "maximum context"   ``ContextWindowExceeded``
other 4xx, a body that is not JSON         ``WorkerError``
========================================== ==================================================

Bad output is a value, not an exception: empty content comes back as ``""`` (a NonEmptyVerifier
rejects it), a missing ``usage`` as ``usage=None`` (cost unknown), ``finish_reason="length"`` is
kept.

Example:
    >>> worker = OpenAICompatWorker(
    ...     "local:qwen-ft-v3", "qwen-ft-v3", "http://127.0.0.1:8000/v1", logprobs=True
    ... )
    >>> worker.name, worker.destination
    ('local:qwen-ft-v3', 'local')
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, cast

from paxis_router.errors import (
    ContextWindowExceeded,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.types import Completion, Usage
from paxis_router.workers._errors import connection_gone, error_detail, retry_after_s, root_message

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx
    from openai import AsyncOpenAI

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


class OpenAICompatWorker:
    """Calls ``POST {base_url}/chat/completions`` on an OpenAI-compatible server.

    Args:
        name: the tier's stable name (``"local:qwen-ft-v3"``); ledger rows key on it.
        model: the model id the server serves (for vLLM, the base model or a LoRA adapter name).
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: sent as a bearer token; ``None`` sends the placeholder ``"EMPTY"`` (vLLM's
            convention) — the environment's OPENAI_API_KEY is never sent to a local server.
        price: how a call is priced (a ``GpuHourPrice`` for a local GPU); None = unknown.
        destination: ``"local"`` or ``"provider:region"``, for the action gate.
        timeout_s: per-call timeout in seconds.
        logprobs: always ask for token logprobs (also asked when ``request.logprobs``).
        http_client: an ``httpx.AsyncClient`` to use (tests pass one on a MockTransport).
        extra_body: extra JSON fields merged into each request body (e.g. vLLM's ``top_k``).
        max_context_tokens: the model's context window, when the router should know it.
        skill_adapters: when the selected skill names a LoRA adapter (its SKILL.md metadata
            ``paxis-adapter``), request that adapter as the model — vLLM serves each adapter
            loaded with ``--lora-modules name=path`` under its name.

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
        destination: str = "local",
        timeout_s: float = 60.0,
        logprobs: bool = False,
        http_client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, object] | None = None,
        max_context_tokens: int | None = None,
        skill_adapters: bool = True,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.name = name
        self.model = model
        self.base_url = base_url
        self.price = price
        self.destination = destination
        self.timeout_s = timeout_s
        self.logprobs = logprobs
        self.extra_body = dict(extra_body) if extra_body else None
        self.max_context_tokens = max_context_tokens
        self.skill_adapters = skill_adapters
        self._api_key = api_key
        self._http_client = http_client
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAICompatWorker(name={self.name!r}, model={self.model!r}, url={self.base_url!r})"
        )

    def _client_for_loop(self) -> AsyncOpenAI:
        # An SDK-owned connection pool belongs to one event loop (route_sync runs a new loop per
        # call), so the client is rebuilt when the loop changes. A caller's http_client is reused.
        loop = asyncio.get_running_loop()
        if self._client is None or (self._http_client is None and self._client_loop is not loop):
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                api_key=self._api_key or "EMPTY",
                base_url=self.base_url,
                timeout=self.timeout_s,
                max_retries=0,
                # Any: the SDK types httpx2 clients but accepts legacy httpx ones at runtime
                http_client=cast("Any", self._http_client),
            )
            self._client_loop = loop
        return self._client

    def model_for(self, skill: Skill | None) -> str:
        """The served model to request: the skill's LoRA adapter when it names one."""
        if self.skill_adapters and skill is not None:
            adapter = skill.metadata.get(ADAPTER_KEY)
            if adapter:
                return adapter
        return self.model

    def _body(
        self, request: ChatRequest, skill: Skill | None
    ) -> dict[str, Any]:  # Any: the SDK's keyword arguments
        kwargs: dict[str, Any] = {  # Any: the SDK's keyword arguments
            "model": self.model_for(skill),
            "messages": [m.model_dump(exclude_none=True) for m in request.messages],
        }
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        if self.logprobs or request.logprobs:
            kwargs["logprobs"] = True
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        return kwargs

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        """One chat completion; raises a WorkerError subclass when the call fails."""
        import openai

        client = self._client_for_loop()
        t0 = time.perf_counter()
        try:
            response = await client.chat.completions.create(**self._body(request, skill))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._not_json(request, exc) from exc
        except openai.OpenAIError as exc:
            raise self._map_error(exc, request) from exc
        latency_s = time.perf_counter() - t0
        if isinstance(response, str | bytes):
            raise self._not_json(request, None)
        return self._to_completion(response, request, latency_s)

    def _not_json(self, request: ChatRequest, exc: ValueError | None) -> WorkerError:
        what = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        return WorkerError(
            f"the server at {self.base_url} returned a body that is {what}; check that "
            "base_url points at an OpenAI-compatible API (usually ending in /v1)",
            worker=self.name,
            request_id=request.request_id,
        )

    def _to_completion(
        self,
        response: Any,  # Any: the SDK's ChatCompletion (or raw text from a broken server)
        request: ChatRequest,
        latency_s: float,
    ) -> Completion:
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise WorkerError(
                f"the server at {self.base_url} returned no choices "
                f"(got {type(response).__name__}); check that it is OpenAI-compatible",
                worker=self.name,
                request_id=request.request_id,
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None) or ""
        usage = None
        raw_usage = getattr(response, "usage", None)
        if raw_usage is not None and raw_usage.prompt_tokens is not None:
            usage = Usage(
                prompt_tokens=int(raw_usage.prompt_tokens),
                completion_tokens=int(raw_usage.completion_tokens or 0),
            )
        token_logprobs: tuple[float, ...] | None = None
        logprobs = getattr(choice, "logprobs", None)
        if logprobs is not None and getattr(logprobs, "content", None):
            token_logprobs = tuple(float(t.logprob) for t in logprobs.content)
        return Completion(
            content=content,
            model=str(getattr(response, "model", None) or self.model),
            usage=usage,
            finish_reason=getattr(choice, "finish_reason", None),
            token_logprobs=token_logprobs,
            latency_s=latency_s,
        )

    def _map_error(
        self,
        exc: Any,  # Any: an openai.OpenAIError (the SDK is imported lazily)
        request: ChatRequest,
    ) -> WorkerError:
        import openai

        rid = request.request_id
        if isinstance(exc, openai.APITimeoutError):
            return WorkerTimeout(
                f"no answer from {self.base_url} within {self.timeout_s} s; raise timeout_s or "
                "check the server's load",
                worker=self.name,
                request_id=rid,
            )
        if isinstance(exc, openai.APIConnectionError):
            gone = connection_gone(exc)
            hint = "is the server running and the URL right?" if gone else "will retry"
            return WorkerUnavailable(
                f"cannot reach {self.base_url}: {root_message(exc)}; {hint}",
                worker=self.name,
                request_id=rid,
                transient=not gone,
            )
        if isinstance(exc, openai.APIStatusError):
            return self._map_status(exc, rid)
        if isinstance(exc, openai.APIResponseValidationError):
            return WorkerError(
                f"the server at {self.base_url} returned an invalid response ({exc}); check that "
                "it is OpenAI-compatible",
                worker=self.name,
                request_id=rid,
            )
        return WorkerError(
            f"call failed: {type(exc).__name__}: {exc}", worker=self.name, request_id=rid
        )

    def _map_status(
        self,
        exc: Any,  # Any: openai.APIStatusError (imported lazily)
        request_id: str,
    ) -> WorkerError:
        status = int(exc.status_code)
        detail = error_detail(exc)
        if status == 429 or status >= 500:
            return WorkerUnavailable(
                f"HTTP {status} from {self.base_url}: {detail}",
                worker=self.name,
                request_id=request_id,
                transient=True,
                status_code=status,
                retry_after_s=retry_after_s(getattr(exc.response, "headers", None)),
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
        """Close the SDK client (and a caller's http_client with it)."""
        if self._client is not None:
            await self._client.close()
            self._client = None
