"""A LangChain chat model that routes through a paxis Router (extra ``[langchain]``).

``PaxisChatModel(router=...)`` is a ``BaseChatModel``: ``invoke``, ``ainvoke``, ``batch``,
``stream`` (the verified answer, in one chunk) and chains work as with any chat model, and so
do ``bind_tools`` (OpenAI function tools from pydantic classes, functions, LangChain tools or
dicts; ``tool_choice`` ``auto``/``none``/``required``/``any``/a tool's name) and
``with_structured_output`` (``method="function_calling"`` by default, LangChain's own default,
which every tool-calling tier supports; ``"json_schema"``; ``"json_mode"``). Each call is one
route — worker first, escalated when the checks fail (a tool call must name an offered tool
with arguments that fit its schema, a JSON answer must fit the schema asked for), every
attempt in the ledger under ``team``. The AIMessage carries ``tool_calls``,
``usage_metadata`` (tokens paid for across attempts) and ``response_metadata`` with the route
id, tier, escalation and cost. Image parts (``image_url``, or LangChain's ``image`` blocks with
a URL or base64 data) go to the tiers that read images.

Example:
    >>> from paxis_router import Router
    >>> from paxis_router.testing import FakeWorker
    >>> chat = PaxisChatModel(router=Router(tiers=[FakeWorker(["Paris"])]), team="docs")
    >>> chat.invoke("Capital of France?").content
    'Paris'
"""

from __future__ import annotations

import json
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, ValidationError

from paxis_router.errors import ConfigError
from paxis_router.integrations._sync import route_blocking
from paxis_router.router import Router  # noqa: TC001  pydantic needs it at runtime
from paxis_router.types import ChatRequest, FunctionCall, Message, Role, ToolCall
from paxis_router.workers._wire import SENT_FIELDS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import LanguageModelInput
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool

    from paxis_router.types import RouteResult

_ROLES: dict[str, Role] = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
#: Call kwargs sent on as the ChatRequest field of the same name (``stop`` is an argument).
_PARAMS = tuple(name for name in SENT_FIELDS if name != "stop")
StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


def _content(message: BaseMessage) -> str | list[dict[str, Any]]:
    """The message's content: its text, or OpenAI content parts when it holds an image.

    Any: OpenAI content-part JSON."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []  # Any: OpenAI content-part JSON
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif isinstance(part, dict) and part.get("type") in ("image_url", "image"):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(part, message)}})
        elif isinstance(part, dict) and part.get("type") in ("tool_use", "tool_call"):
            continue  # a provider's own copy of a tool call: message.tool_calls carries it
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ConfigError(
                f"{message.type} message: content blocks of type {kind!r} are not supported "
                "(text and images are)"
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _image_url(part: dict[str, Any], message: BaseMessage) -> str:  # Any: a content block
    """An image block's URL: OpenAI's ``image_url`` (text or object), or LangChain's standard
    ``image`` block with a ``url`` or base64 data (made a ``data:`` URL)."""
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if url is None:
        url = part.get("url")
    data = part.get("base64") or part.get("data")
    if url is None and isinstance(data, str):
        url = f"data:{part.get('mime_type') or 'image/png'};base64,{data}"
    if not isinstance(url, str):
        raise ConfigError(f"{message.type} message: an image block without a URL or data")
    return url


def _message(message: BaseMessage) -> Message:
    role = _ROLES.get(message.type)
    if role is None:
        raise ConfigError(f"unsupported LangChain message type {message.type!r}")
    content = _content(message)
    if isinstance(message, ToolMessage):
        return Message.model_validate(
            {"role": "tool", "content": content, "tool_call_id": message.tool_call_id}
        )
    calls = getattr(message, "tool_calls", None) if isinstance(message, AIMessage) else None
    if calls:
        wire = tuple(
            ToolCall(
                id=call.get("id") or f"call_{i}",
                function=FunctionCall(name=call["name"], arguments=json.dumps(call["args"])),
            )
            for i, call in enumerate(calls)
        )
        return Message.model_validate(
            {"role": "assistant", "content": content or None, "tool_calls": wire}
        )
    return Message.model_validate({"role": role, "content": content})


def _tool_choice(choice: str | bool | dict[str, Any]) -> str | dict[str, Any]:
    """LangChain's ``tool_choice`` -> OpenAI's (as ChatOpenAI maps it): ``any`` and ``True``
    are ``required``, ``False`` is ``none``, another name is that function."""
    if isinstance(choice, bool):
        return "required" if choice else "none"
    if isinstance(choice, dict):
        return choice
    if choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


class PaxisChatModel(BaseChatModel):
    """A LangChain chat model over a paxis Router.

    Attributes:
        router: the Router each call runs.
        team: the team billed on every ledger row.
        data_class: the data classification given to each request (``internal`` when None).

    Example:
        >>> from paxis_router import Router
        >>> from paxis_router.testing import FakeWorker
        >>> PaxisChatModel(router=Router(tiers=[FakeWorker(["hi"])])).invoke("hello").content
        'hi'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Router
    team: str | None = None
    data_class: str | None = None

    @property
    def _llm_type(self) -> str:
        return "paxis-router"

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatRequest:
        # Any: LangChain's free-form call kwargs
        metadata = {}
        if self.team is not None:
            metadata["team"] = self.team
        if self.data_class is not None:
            metadata["data_class"] = self.data_class
        params = {name: kwargs[name] for name in _PARAMS if kwargs.get(name) is not None}
        if stop:
            params["stop"] = tuple(stop)
        try:
            return ChatRequest(
                messages=tuple(_message(m) for m in messages), metadata=metadata, **params
            )
        except ValidationError as exc:
            raise ConfigError(f"PaxisChatModel cannot send this request: {exc}") from exc

    @staticmethod
    def _result(result: RouteResult) -> ChatResult:
        usage = result.usage
        completion = result.completion
        calls: list[Any] = []  # Any: LangChain ToolCall TypedDicts
        invalid: list[Any] = []  # Any: LangChain InvalidToolCall TypedDicts
        for call in completion.tool_calls:
            error: str | None
            try:
                args = call.parsed_arguments()
            except ValueError as exc:
                args, error = None, f"arguments are not JSON: {exc}"
            else:
                error = None if isinstance(args, dict) else "arguments are not a JSON object"
            if error is None:
                calls.append(tool_call(name=call.name, args=args, id=call.id))
            else:
                invalid.append(
                    invalid_tool_call(name=call.name, args=call.arguments, id=call.id, error=error)
                )
        finish = completion.finish_reason or ("tool_calls" if calls or invalid else "stop")
        message = AIMessage(
            content=completion.content,
            tool_calls=calls,
            invalid_tool_calls=invalid,
            usage_metadata={
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            response_metadata={
                "model_name": completion.model,
                "finish_reason": finish,
                "paxis_route_id": result.route_id,
                "paxis_tier": result.tier,
                "paxis_escalated": result.escalated,
                "paxis_cost_usd": None if result.cost_usd is None else f"{result.cost_usd:f}",
            },
            id=f"paxis-{result.route_id}",
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with ``tools`` offered on every call (OpenAI function tools).

        Args:
            tools: pydantic classes, functions, LangChain tools or OpenAI tool dicts.
            tool_choice: ``auto``, ``none``, ``required`` (or ``any``/``True``), or a tool's
                name (that tool must be called).
            strict: ask for OpenAI's strict schema adherence on each function.
            parallel_tool_calls: whether the model may call several tools at once.
            **kwargs: other call parameters (``temperature``...), bound too.

        Any: LangChain's tool inputs and free-form call kwargs.

        Example:
            >>> from paxis_router import Router
            >>> from paxis_router.testing import FakeWorker
            >>> def add(a: int, b: int) -> int:
            ...     "Add two integers."
            ...     return a + b
            >>> chat = PaxisChatModel(router=Router(tiers=[FakeWorker(["3"])]))
            >>> chat.bind_tools([add], tool_choice="auto").invoke("1+2?").content
            '3'
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredMethod = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """This model answering with ``schema``'s structure: a pydantic instance for a pydantic
        class, else a dict.

        Args:
            schema: a pydantic class, a TypedDict, a JSON schema or an OpenAI tool dict.
            include_raw: return ``{"raw", "parsed", "parsing_error"}`` instead of raising on a
                parsing error.
            method: ``function_calling`` (the schema as a tool the model must call),
                ``json_schema`` (``response_format`` ``json_schema``) or ``json_mode``
                (``response_format`` ``json_object``: say the keys in the prompt).
            strict: ask for OpenAI's strict schema adherence.
            **kwargs: other call parameters, bound too.

        Any: JSON schemas and parsed JSON.

        Example:
            >>> from pydantic import BaseModel
            >>> from paxis_router import Router
            >>> from paxis_router.testing import FakeWorker
            >>> class City(BaseModel):
            ...     name: str
            >>> chat = PaxisChatModel(router=Router(tiers=[FakeWorker(['{"name": "Paris"}'])]))
            >>> chat.with_structured_output(City, method="json_schema").invoke("Capital?")
            City(name='Paris')
        """
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        function = convert_to_openai_tool(schema, strict=strict)["function"]
        name = function["name"]
        parser: Runnable[Any, Any]  # Any: the parsed output
        if method == "function_calling":
            llm = self.bind_tools(
                [schema], tool_choice=name, strict=strict, parallel_tool_calls=False, **kwargs
            )
            if is_model:
                parser = PydanticToolsParser(tools=[schema], first_tool_only=True)
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                spec: dict[str, Any] = {"name": name, "schema": function.get("parameters", {})}
                if strict is not None:
                    spec["strict"] = strict
                fmt: dict[str, Any] = {"type": "json_schema", "json_schema": spec}
            else:
                fmt = {"type": "json_object"}
            llm = self.bind(response_format=fmt, **kwargs)
            if is_model:
                parser = PydanticOutputParser(pydantic_object=schema)
            else:
                parser = JsonOutputParser()
        else:
            raise ConfigError(
                f"with_structured_output: method must be function_calling, json_schema or "
                f"json_mode, got {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error"
        )
        return RunnableMap(raw=llm) | parsed

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # Any: LangChain's free-form call kwargs
    ) -> ChatResult:
        return self._result(route_blocking(self.router, self._request(messages, stop, kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # Any: LangChain's free-form call kwargs
    ) -> ChatResult:
        return self._result(await self.router.route(self._request(messages, stop, kwargs)))
