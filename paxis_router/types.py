"""The values that flow through a route.

``ChatRequest`` is a validated pydantic model (it arrives from users and over HTTP); the values
the router makes on the hot path (``Completion``, ``Verdict``, ``Attempt``, ``RouteResult``,
``CallRecord``) are frozen dataclasses. Money is ``Decimal`` USD; ``None`` means unknown.
"""

from __future__ import annotations

import enum
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from collections.abc import Mapping
    from decimal import Decimal

Role = Literal["system", "user", "assistant", "tool", "developer"]


def new_id() -> str:
    """A fresh random identifier (32 hex characters)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str
    name: str | None = None


class ChatRequest(BaseModel):
    """A chat request to route.

    ``metadata`` carries routing facts: ``team`` (who pays), ``data_class`` (e.g. ``public``,
    ``internal``, ``restricted``) and optionally ``skill`` (a skill id that bypasses selection).

    Example:
        >>> req = ChatRequest.from_text("What is 2+2?", team="claims")
        >>> req.team, req.query
        ('claims', 'What is 2+2?')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[Message, ...] = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    request_id: str = Field(default_factory=new_id)
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0)
    logprobs: bool = False
    response_format: dict[str, Any] | None = None  # vendor boundary: OpenAI's free-form shape

    @field_validator("metadata", mode="before")
    @classmethod
    def _stringify_metadata(cls, value: Any) -> Any:  # vendor boundary: raw user input
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items() if v is not None}
        return value

    @classmethod
    def from_text(cls, text: str, **metadata: str) -> ChatRequest:
        """Build a one-message user request with the given metadata."""
        return cls(messages=(Message(role="user", content=text),), metadata=metadata)

    @property
    def team(self) -> str | None:
        """The team that pays for this request, if given."""
        return self.metadata.get("team")

    @property
    def data_class(self) -> str:
        """The data classification of the request; ``internal`` when not given."""
        return self.metadata.get("data_class", "internal")

    @property
    def query(self) -> str:
        """The text used to select skills: the last user message."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return self.messages[-1].content

    def with_system(self, text: str) -> ChatRequest:
        """A copy with ``text`` prepended as (or merged into) the system message."""
        if not text:
            return self
        messages = list(self.messages)
        if messages and messages[0].role == "system":
            merged = f"{text}\n\n{messages[0].content}"
            messages[0] = Message(role="system", content=merged)
        else:
            messages.insert(0, Message(role="system", content=text))
        return self.model_copy(update={"messages": tuple(messages)})


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed."""

    prompt_tokens: int
    completion_tokens: int
    # Of the prompt tokens, those the provider served from its prompt cache (billed at the cached
    # rate where it has one); of the completion tokens, the hidden reasoning tokens. 0 when the
    # provider reports none.
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """What one worker call returned.

    ``usage`` is ``None`` when the backend did not report it; ``token_logprobs`` holds one
    natural-log probability per generated token when the backend returned them.
    """

    content: str
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None
    token_logprobs: tuple[float, ...] | None = None
    latency_s: float = 0.0

    @property
    def mean_token_prob(self) -> float | None:
        """exp(mean log-probability) of the generated tokens, or None without logprobs."""
        if not self.token_logprobs:
            return None
        return math.exp(sum(self.token_logprobs) / len(self.token_logprobs))


@dataclass(frozen=True, slots=True)
class Verdict:
    """One verifier's judgement of one completion. A rejection is a value, never an exception."""

    verifier: str
    passed: bool
    score: float | None = None
    reason: str = ""


class Decision(enum.StrEnum):
    """What the router did after an attempt."""

    ACCEPT = "accept"
    ESCALATE = "escalate"
    STOP = "stop"
    # A calibration sample: the next tier also answered a route whose answer was already decided
    # (``Router(shadow_rate=...)``); recorded with ``final`` False, never the route's answer.
    SHADOW = "shadow"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one tier, accepted or not. A failed call has ``error`` and no completion."""

    tier: str
    tier_index: int
    model: str
    started_at: datetime
    latency_s: float
    completion: Completion | None = None
    error: str | None = None
    error_type: str | None = None
    verdicts: tuple[Verdict, ...] = ()
    cost_usd: Decimal | None = None
    decision: Decision = Decision.ESCALATE
    reason: str = ""

    @property
    def passed(self) -> bool:
        """True when the call succeeded and every verifier passed."""
        return self.completion is not None and all(v.passed for v in self.verdicts)

    @property
    def usage(self) -> Usage | None:
        return self.completion.usage if self.completion else None


@dataclass(frozen=True, slots=True)
class RouteResult:
    """The outcome of one route: the answer, who gave it, why, and what it cost.

    ``cost_usd`` is the sum over attempts (``None`` if any attempt's price is unknown);
    ``counterfactual_usd`` is what the answered tokens would have cost on the ladder's top tier.
    """

    route_id: str
    request_id: str
    completion: Completion
    tier: str
    attempts: tuple[Attempt, ...]
    decision: Decision
    reason: str
    cost_usd: Decimal | None
    counterfactual_usd: Decimal | None
    skills: tuple[str, ...] = ()
    degraded: bool = False
    budget_capped: bool = False
    accepted: bool = True

    @property
    def escalated(self) -> bool:
        """True when more than one tier was tried."""
        return len(self.attempts) > 1

    @property
    def content(self) -> str:
        return self.completion.content

    @property
    def usage(self) -> Usage:
        """Tokens paid for across all attempts."""
        prompt = sum(a.usage.prompt_tokens for a in self.attempts if a.usage)
        completion = sum(a.usage.completion_tokens for a in self.attempts if a.usage)
        return Usage(prompt_tokens=prompt, completion_tokens=completion)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One ledger row: one attempt of one route, accepted or rejected.

    ``final`` marks the attempt that ended the route; ``counterfactual_usd`` is set on that row
    only (the route's frontier-only cost), so summing it over final rows gives the counterfactual.
    """

    route_id: str
    request_id: str
    attempt_index: int
    ts: datetime
    tier: str
    tier_index: int
    model: str
    decision: Decision
    reason: str
    final: bool
    team: str | None = None
    skill: str | None = None
    data_class: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    cost_usd: Decimal | None = None
    counterfactual_usd: Decimal | None = None
    verdicts: tuple[Verdict, ...] = ()
    passed: bool = False
    error: str | None = None
    error_type: str | None = None
    finish_reason: str | None = None
    degraded: bool = False
    budget_capped: bool = False
    messages: tuple[Message, ...] | None = None  # the prompt as sent (stored only when opted in)
    content: str | None = None  # the answer (stored only when opted in: SQLiteLedger store_content)
    cached_prompt_tokens: int | None = None
    reasoning_tokens: int | None = None
    tools: tuple[str, ...] = ()  # names of the tools this attempt's answer called, in order
    task_id: str | None = None  # the orchestrator task this route was a step of
    step: int | None = None  # the step number within that task (0-based)
    tags: Mapping[str, str] = field(default_factory=dict)  # grouping tags from request metadata
    id: int | None = field(default=None, compare=False)
