"""A LangChain chat model that routes through a paxis Router (extra ``[langchain]``).

``PaxisChatModel(router=...)`` is a ``BaseChatModel``: ``invoke``, ``ainvoke``, ``batch``,
``stream`` (the verified answer, in one chunk) and chains work as with any chat model. Each
call is one route — worker first, escalated when the checks fail, every attempt in the ledger
under ``team``. The AIMessage carries ``usage_metadata`` (tokens paid for across attempts) and
``response_metadata`` with the route id, tier, escalation and cost.

Example:
    >>> from paxis_router import Router
    >>> from paxis_router.testing import FakeWorker
    >>> chat = PaxisChatModel(router=Router(tiers=[FakeWorker(["Paris"])]), team="docs")
    >>> chat.invoke("Capital of France?").content
    'Paris'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from paxis_router.errors import ConfigError
from paxis_router.integrations._sync import route_blocking
from paxis_router.router import Router  # noqa: TC001  pydantic needs it at runtime
from paxis_router.types import ChatRequest, Message, Role

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )

    from paxis_router.types import RouteResult

_ROLES: dict[str, Role] = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        else:
            raise ConfigError(f"{message.type} message: only text content is supported")
    return "".join(parts)


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

    def _request(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatRequest:
        # Any: LangChain's free-form call kwargs
        converted = []
        for message in messages:
            role = _ROLES.get(message.type)
            if role is None:
                raise ConfigError(f"unsupported LangChain message type {message.type!r}")
            converted.append(Message(role=role, content=_text(message)))
        metadata = {}
        if self.team is not None:
            metadata["team"] = self.team
        if self.data_class is not None:
            metadata["data_class"] = self.data_class
        return ChatRequest(
            messages=tuple(converted),
            metadata=metadata,
            max_tokens=kwargs.get("max_tokens"),
            temperature=kwargs.get("temperature"),
        )

    @staticmethod
    def _result(result: RouteResult) -> ChatResult:
        usage = result.usage
        message = AIMessage(
            content=result.content,
            usage_metadata={
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            response_metadata={
                "model_name": result.completion.model,
                "finish_reason": result.completion.finish_reason or "stop",
                "paxis_route_id": result.route_id,
                "paxis_tier": result.tier,
                "paxis_escalated": result.escalated,
                "paxis_cost_usd": None if result.cost_usd is None else f"{result.cost_usd:f}",
            },
            id=f"paxis-{result.route_id}",
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # Any: LangChain's free-form call kwargs
    ) -> ChatResult:
        return self._result(route_blocking(self.router, self._request(messages, kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # Any: LangChain's free-form call kwargs
    ) -> ChatResult:
        return self._result(await self.router.route(self._request(messages, kwargs)))
