"""A LiteLLM custom provider: ``litellm.completion(model="paxis/auto", ...)`` routes in-process.

``register(router)`` adds a ``paxis`` provider to ``litellm.custom_provider_map``; afterwards
``litellm.completion`` and ``litellm.acompletion`` with ``model="paxis/<route>"`` run the
matching Router (``auto`` for a single router) in this process — worker first, verified,
escalated when the checks fail, every attempt in the ledger; ``stream=True`` streams the
verified answer. The team comes from ``register``'s ``team`` or per call from
``metadata={"team": ...}`` (in-process code is trusted).

Tools go through as OpenAI shapes both ways: ``tools``, ``tool_choice``,
``parallel_tool_calls``, ``response_format`` (also a pydantic class, which litellm turns into
a JSON schema), ``stop``, ``top_p``, ``seed``, the penalties and ``user`` reach every tier;
assistant ``tool_calls`` and ``tool`` results in the messages are kept; the answer's tool calls
come back in ``message.tool_calls`` with ``finish_reason "tool_calls"`` (streamed: one chunk
per call). Image parts go to tiers that read images.

litellm is imported through :func:`paxis_router.workers.litellm.load_litellm` (local price
map, no network), inside ``register``: importing this module imports nothing heavy.

Example:
    >>> from paxis_router import Router
    >>> from paxis_router.workers.litellm import load_litellm
    >>> litellm = load_litellm()  # litellm with its bundled price map, no network
    >>> from paxis_router.testing import FakeWorker
    >>> register(Router(tiers=[FakeWorker(["4"])]), team="docs")
    >>> litellm.completion(model="paxis/auto", messages=[{"role": "user", "content": "2+2?"}]
    ...     ).choices[0].message.content
    '4'
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from paxis_router.errors import ConfigError
from paxis_router.integrations._sync import route_blocking
from paxis_router.types import ChatRequest, Message
from paxis_router.workers._wire import SENT_FIELDS

if TYPE_CHECKING:
    from paxis_router.router import Router
    from paxis_router.types import RouteResult

PROVIDER = "paxis"


#: litellm optional params sent on as the ChatRequest field of the same name (``stop`` and
#: ``max_tokens`` are read apart: litellm spells them more than one way).
_PARAMS = tuple(name for name in SENT_FIELDS if name not in ("stop", "max_tokens"))


def _request(
    model: str,
    messages: list[Any],  # Any: litellm's message dicts
    optional_params: Mapping[str, Any],  # Any: litellm's optional params
    litellm_params: Mapping[str, Any] | None,  # Any: litellm's call params
    team: str | None,
) -> ChatRequest:
    metadata: dict[str, str] = {}
    raw_meta = (litellm_params or {}).get("metadata") or {}
    if isinstance(raw_meta, Mapping):
        metadata.update({k: str(v) for k, v in raw_meta.items() if k in ("team", "data_class")})
    if team is not None and "team" not in metadata:
        metadata["team"] = team
    params = {n: optional_params[n] for n in _PARAMS if optional_params.get(n) is not None}
    stop = optional_params.get("stop")
    if stop is not None:
        params["stop"] = stop if isinstance(stop, str) else tuple(stop)
    try:
        return ChatRequest(
            messages=tuple(_message(m, i) for i, m in enumerate(messages)),
            metadata=metadata,
            max_tokens=optional_params.get("max_tokens")
            or optional_params.get("max_completion_tokens"),
            **params,
        )
    except ValidationError as exc:
        raise ConfigError(f"the paxis provider cannot send this request: {exc}") from exc


_MESSAGE_KEYS = ("role", "content", "name", "tool_call_id")


def _message(raw: Any, index: int) -> Message:  # Any: a litellm/OpenAI message dict
    if not isinstance(raw, Mapping):
        raw = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
    fields = {k: raw[k] for k in _MESSAGE_KEYS if raw.get(k) is not None}
    content = fields.get("content")
    if isinstance(content, list):
        kinds = [p.get("type") if isinstance(p, Mapping) else None for p in content]
        unsupported = [k for k in kinds if k not in ("text", "image_url")]
        if unsupported:
            raise ConfigError(
                f"messages[{index}]: content parts of type {unsupported[0]!r} are not supported "
                "(text and image_url are)"
            )
        fields["content"] = [
            {"type": "text", "text": p.get("text", "")}
            if p.get("type") == "text"
            else {"type": "image_url", "image_url": _image_url(p.get("image_url"))}
            for p in content
        ]
    calls = raw.get("tool_calls")
    if calls:
        fields["tool_calls"] = [_tool_call(c) for c in calls]
    elif content is None and fields.get("role") == "assistant":
        fields["content"] = ""
    try:
        return Message.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(f"messages[{index}] is not a valid chat message: {exc}") from exc


def _image_url(raw: Any) -> Any:  # Any: OpenAI's image_url (text or object)
    return {"url": raw} if isinstance(raw, str) else raw


def _tool_call(raw: Any) -> dict[str, Any]:  # Any: a tool call dict or litellm object
    if not isinstance(raw, Mapping):
        raw = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
    function = raw.get("function") or {}
    if not isinstance(function, Mapping):
        function = function.model_dump() if hasattr(function, "model_dump") else dict(function)
    return {
        "id": raw.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": function.get("arguments") or ""},
    }


def _finish_reason(result: RouteResult) -> str:
    reason = result.completion.finish_reason
    if result.completion.tool_calls and reason in (None, "stop"):
        return "tool_calls"
    return reason or "stop"


def _fill(
    model_response: Any,  # Any: litellm.ModelResponse
    result: RouteResult,
    model: str,
) -> Any:  # Any: litellm.ModelResponse
    from paxis_router.workers.litellm import load_litellm

    litellm: Any = load_litellm()  # Any: the litellm module, untyped
    choice = model_response.choices[0]
    completion = result.completion
    choice.message.content = completion.content
    if completion.tool_calls:
        types = litellm.types.utils
        choice.message.content = completion.content or None
        choice.message.tool_calls = [
            types.ChatCompletionMessageToolCall(
                id=call.id,
                type="function",
                function=types.Function(name=call.name, arguments=call.arguments),
            )
            for call in completion.tool_calls
        ]
    choice.finish_reason = _finish_reason(result)
    model_response.model = f"{PROVIDER}/{model}"
    model_response.created = int(time.time())
    usage = result.usage
    model_response.usage = litellm.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )
    model_response._hidden_params["paxis"] = {
        "route_id": result.route_id,
        "tier": result.tier,
        "escalated": result.escalated,
        "cost_usd": None if result.cost_usd is None else f"{result.cost_usd:f}",
    }
    return model_response


def _chunks(result: RouteResult) -> list[dict[str, Any]]:  # Any: litellm's chunk TypedDict
    """The verified answer as litellm ``GenericStreamingChunk`` dicts: the text, each tool
    call (whole, with its index), then the end."""
    usage = result.usage
    chunks: list[dict[str, Any]] = [  # Any: litellm's chunk TypedDict
        {"text": result.content, "is_finished": False, "finish_reason": "", "usage": None}
    ]
    for index, call in enumerate(result.completion.tool_calls):
        chunks.append(
            {
                "text": "",
                "tool_use": {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                    "index": index,
                },
                "is_finished": False,
                "finish_reason": "",
                "usage": None,
            }
        )
    chunks.append(
        {
            "text": "",
            "is_finished": True,
            "finish_reason": _finish_reason(result),
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
    )
    return chunks


def register(
    routes: Router | Mapping[str, Router],
    *,
    team: str | None = None,
    provider: str = PROVIDER,
) -> None:
    """Make ``litellm.completion(model="<provider>/<route>")`` run these Routers in-process.

    Args:
        routes: one Router (served as ``<provider>/auto``) or route name -> Router.
        team: the team billed when a call's ``metadata`` names none.
        provider: the model prefix (``paxis``); re-registering replaces the earlier handler.

    Example:
        >>> from paxis_router import Router
        >>> from paxis_router.testing import FakeWorker
        >>> register({"cheap": Router(tiers=[FakeWorker(["ok"])])}, team="docs")
    """
    from paxis_router.workers.litellm import load_litellm

    litellm: Any = load_litellm()  # Any: the litellm module, untyped
    table = dict(routes) if isinstance(routes, Mapping) else {"auto": routes}
    if not table:
        raise ConfigError("register needs at least one route")

    def router_for(model: str) -> Router:
        name = model.split("/", 1)[1] if model.startswith(f"{provider}/") else model
        router = table.get(name)
        if router is None:
            raise ConfigError(
                f"unknown paxis route {model!r}; registered: "
                f"{sorted(f'{provider}/{n}' for n in table)}"
            )
        return router

    base: Any = litellm.CustomLLM  # Any: litellm's untyped base class

    class PaxisLLM(base):  # type: ignore[misc]  # subclassing an Any base
        def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            # Any: litellm's handler signature (model_response, optional_params, ... by keyword)
            request = _request(
                model, messages, kwargs["optional_params"], kwargs.get("litellm_params"), team
            )
            result = route_blocking(router_for(model), request)
            return _fill(kwargs["model_response"], result, model)

        async def acompletion(
            self, model: str, messages: list[Any], *args: Any, **kwargs: Any
        ) -> Any:
            # Any: litellm's handler signature (model_response, optional_params, ... by keyword)
            request = _request(
                model, messages, kwargs["optional_params"], kwargs.get("litellm_params"), team
            )
            result = await router_for(model).route(request)
            return _fill(kwargs["model_response"], result, model)

        def streaming(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            # Any: litellm's handler signature; yields GenericStreamingChunk dicts
            request = _request(
                model, messages, kwargs["optional_params"], kwargs.get("litellm_params"), team
            )
            return iter(_chunks(route_blocking(router_for(model), request)))

        async def astreaming(
            self, model: str, messages: list[Any], *args: Any, **kwargs: Any
        ) -> Any:
            # Any: litellm's handler signature; yields GenericStreamingChunk dicts
            request = _request(
                model, messages, kwargs["optional_params"], kwargs.get("litellm_params"), team
            )
            for chunk in _chunks(await router_for(model).route(request)):
                yield chunk

    entries = [e for e in litellm.custom_provider_map if e.get("provider") != provider]
    entries.append({"provider": provider, "custom_handler": PaxisLLM()})
    litellm.custom_provider_map = entries
    litellm.utils.custom_llm_setup()  # litellm's own step that adds the provider to its lists
