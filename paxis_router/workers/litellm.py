"""A worker for frontier providers through litellm (OpenAI, Anthropic, Gemini, Bedrock, ...).

This is the only module that imports litellm, and it does so lazily, inside the call path, right
after ``os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")`` so that litellm never
fetches its price map over the network. ``import paxis_router`` does not import litellm and does
not touch the environment. Provider keys come from the environment, read by litellm itself.

litellm's exceptions are mapped onto paxis_router's tree: ``Timeout`` -> ``WorkerTimeout``;
rate limits, 5xx and dropped connections -> ``WorkerUnavailable(transient=True)``;
authentication, permission, model-not-found, refused connections and DNS failures ->
``WorkerUnavailable(transient=False)``; ``ContextWindowExceededError`` ->
``ContextWindowExceeded``; any other bad request -> ``WorkerError``.

Every request field a tier must see is passed (``tools``, ``tool_choice``,
``parallel_tool_calls``, ``response_format``, ``stop``, ``seed``, ``top_p``, the penalties,
``user``; the messages in OpenAI's shape), never dropped: a provider that does not support one
fails the call through litellm's own error (``drop_params`` stays off unless a caller sets it in
``completion_kwargs``). Tool calls come back in ``Completion.tool_calls``.

Example:
    >>> worker = LiteLLMWorker("gpt-4o", completion_kwargs={"mock_response": "42"})
    >>> worker.name, worker.destination, worker.price is not None
    ('frontier:gpt-4o', 'openai', True)
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ContextWindowExceeded, WorkerError, WorkerTimeout, WorkerUnavailable
from paxis_router.pricing import context_window, litellm_price, litellm_price_map
from paxis_router.types import Completion, Usage
from paxis_router.workers._errors import connection_gone, error_detail, retry_after_s
from paxis_router.workers._wire import refuse_images, request_params, tool_calls_of

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

    from paxis_router.pricing import Price
    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest

logger = logging.getLogger(__name__)

_UNSET: Any = object()  # Any: a sentinel that tells "not given" from an explicit None


def load_litellm() -> ModuleType:
    """Import litellm with its bundled price map (never fetched over the network).

    Sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (unless already set) right before the import: this
    is the only place paxis_router writes the environment, and only on a call path that needs
    litellm. Code (and tests) that need litellm's classes should import it through here.

    Example:
        >>> load_litellm().__name__
        'litellm'
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:
        from paxis_router.errors import ConfigError

        raise ConfigError(
            "kind: litellm tiers and the LiteLLM integration need litellm, an optional extra: "
            "pip install 'paxis-router[litellm]'"
        ) from exc

    module: ModuleType = litellm
    return module


def provider_of(model: str) -> str:
    """The provider a litellm model string goes to: the prefix before ``/``, else ``openai``
    for the first-party models litellm keys without a prefix (``gpt-4o``, ``o3-mini``), and
    ``anthropic`` / ``gemini`` / ... recognised from the model name.

    Example:
        >>> provider_of("anthropic/claude-3-5-sonnet-20240620"), provider_of("gpt-4o")
        ('anthropic', 'openai')
    """
    if "/" in model:
        return model.split("/", 1)[0]
    lowered = model.lower()
    for prefix, provider in (
        ("claude", "anthropic"),
        ("gemini", "gemini"),
        ("command", "cohere"),
        ("mistral", "mistral"),
    ):
        if lowered.startswith(prefix):
            return provider
    return "openai"


class LiteLLMWorker:
    """Calls ``litellm.acompletion`` for one model.

    Args:
        model: the litellm model string (``"gpt-4o"``, ``"anthropic/claude-3-5-sonnet-20240620"``).
        name: the tier's stable name; default ``"frontier:<model>"``.
        price: how a call is priced; default: the model's price in litellm's bundled map
            (``None`` with a warning when the map does not know it).
        destination: where the data goes, for the action gate; default the provider
            (``"openai"``, ``"anthropic"``, ...).
        timeout_s: per-call timeout in seconds.
        completion_kwargs: extra keyword arguments for ``litellm.acompletion`` (``api_base``,
            ``mock_response`` in tests, ...). Retries stay off (``num_retries=0``): they are the
            router's job.
        accepts_images: the model reads image parts; default: what litellm's bundled model map
            says (``supports_vision``; a model it does not list is taken as text-only). A
            request with an image to a tier that does not is refused before any call with
            ``UnsupportedContent`` (zero cost).

    Example:
        >>> LiteLLMWorker("anthropic/claude-3-5-sonnet-20240620").destination
        'anthropic'
    """

    def __init__(
        self,
        model: str,
        name: str | None = None,
        price: Price | None = _UNSET,
        destination: str | None = None,
        timeout_s: float = 120.0,
        completion_kwargs: Mapping[str, Any] | None = None,  # Any: litellm's keyword arguments
        accepts_images: bool | None = None,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.model = model
        self.name = name or f"frontier:{model}"
        self.price: Price | None = litellm_price(model) if price is _UNSET else price
        self.destination = destination or provider_of(model)
        self.timeout_s = timeout_s
        self.max_context_tokens = context_window(model)
        self.completion_kwargs: dict[str, Any] = dict(completion_kwargs or {})  # Any: litellm
        self._accepts_images = accepts_images

    @property
    def accepts_images(self) -> bool:
        """Whether the model reads image parts (given, or litellm's map's ``supports_vision``)."""
        if self._accepts_images is None:
            prices = litellm_price_map()
            entry = prices.get(self.model)
            if entry is None and "/" in self.model:  # "openai/gpt-4o" is keyed "gpt-4o"
                entry = prices.get(self.model.split("/", 1)[1])
            self._accepts_images = bool(entry and entry.get("supports_vision") is True)
        return self._accepts_images

    def __repr__(self) -> str:
        return f"LiteLLMWorker(name={self.name!r}, model={self.model!r})"

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        """One completion from the provider; raises a WorkerError subclass when it fails."""
        if request.has_images and not self.accepts_images:
            refuse_images(request, self.name, f"({self.model}) does not read images")
        litellm = load_litellm()
        import openai

        kwargs: dict[str, Any] = {  # Any: litellm's keyword arguments
            "model": self.model,
            "messages": [m.wire() for m in request.messages],
            "timeout": self.timeout_s,
            "num_retries": 0,
            **request_params(request),
        }
        if request.logprobs:
            kwargs["logprobs"] = True
        kwargs.update(self.completion_kwargs)
        t0 = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except openai.OpenAIError as exc:  # litellm's exceptions derive from the SDK's
            raise self._map_error(exc, request.request_id) from exc
        latency_s = time.perf_counter() - t0
        return self._to_completion(response, latency_s, request.request_id)

    def _to_completion(
        self,
        response: Any,  # Any: litellm's ModelResponse
        latency_s: float,
        request_id: str,
    ) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:
            raise WorkerError(
                f"{self.model} returned no choices", worker=self.name, request_id=request_id
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None) or ""
        raw_calls = getattr(message, "tool_calls", None)
        calls = tool_calls_of([_plain(c) for c in raw_calls]) if raw_calls else ()
        raw_usage = getattr(response, "usage", None)
        usage = None
        if raw_usage is not None and getattr(raw_usage, "prompt_tokens", None) is not None:
            usage = Usage(
                prompt_tokens=int(raw_usage.prompt_tokens),
                completion_tokens=int(raw_usage.completion_tokens or 0),
            )
        token_logprobs: tuple[float, ...] | None = None
        logprobs = getattr(choice, "logprobs", None)
        items = getattr(logprobs, "content", None)
        if items:
            token_logprobs = tuple(float(getattr(t, "logprob", 0.0)) for t in items)
        return Completion(
            content=str(content),
            model=str(getattr(response, "model", None) or self.model),
            usage=usage,
            finish_reason=getattr(choice, "finish_reason", None),
            token_logprobs=token_logprobs,
            latency_s=latency_s,
            tool_calls=calls,
        )

    def _map_error(
        self,
        exc: Any,  # Any: a litellm exception (litellm is imported lazily)
        request_id: str,
    ) -> WorkerError:
        ex = load_litellm().exceptions
        detail = error_detail(exc)
        status = getattr(exc, "status_code", None)
        status = int(status) if isinstance(status, int) else None
        if isinstance(exc, ex.Timeout):
            return WorkerTimeout(
                f"{self.model} did not answer within {self.timeout_s} s: {detail}",
                worker=self.name,
                request_id=request_id,
            )
        if isinstance(exc, ex.ContextWindowExceededError):
            return ContextWindowExceeded(
                f"prompt does not fit the context window of {self.model}: {detail}",
                worker=self.name,
                request_id=request_id,
            )
        if isinstance(exc, ex.AuthenticationError | ex.PermissionDeniedError | ex.NotFoundError):
            return WorkerUnavailable(
                f"{type(exc).__name__} from {self.destination}: {detail}; check the provider key "
                f"in the environment and that {self.model!r} is still offered",
                worker=self.name,
                request_id=request_id,
                transient=False,
                status_code=status,
            )
        if isinstance(exc, ex.APIConnectionError):
            gone = connection_gone(exc)
            return WorkerUnavailable(
                f"cannot reach {self.destination} for {self.model}: {detail}",
                worker=self.name,
                request_id=request_id,
                transient=not gone,
                status_code=status,
            )
        transient_types = (
            ex.RateLimitError,
            ex.ServiceUnavailableError,
            ex.InternalServerError,
            ex.BadGatewayError,
        )
        if isinstance(exc, transient_types) or (status is not None and status >= 500):
            return WorkerUnavailable(
                f"{type(exc).__name__} from {self.destination}: {detail}",
                worker=self.name,
                request_id=request_id,
                transient=True,
                status_code=status,
                retry_after_s=_retry_after_of(exc),
            )
        return WorkerError(
            f"{type(exc).__name__} from {self.destination}: {detail}",
            worker=self.name,
            request_id=request_id,
        )


def _plain(call: Any) -> Any:  # Any: litellm's ChatCompletionMessageToolCall, or a dict
    """A tool call of litellm's response as plain JSON (pydantic objects or dicts)."""
    dump = getattr(call, "model_dump", None)
    return dump() if callable(dump) else call


def _retry_after_of(exc: Any) -> float | None:  # Any: a litellm exception
    headers = getattr(exc, "headers", None) or getattr(exc, "litellm_response_headers", None)
    if headers:
        return retry_after_s({str(k).lower(): str(v) for k, v in dict(headers).items()})
    return retry_after_s(getattr(getattr(exc, "response", None), "headers", None))
