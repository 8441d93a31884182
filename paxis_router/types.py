"""The values that flow through a route.

``ChatRequest`` is a validated pydantic model (it arrives from users and over HTTP); the values
the router makes on the hot path (``Completion``, ``Verdict``, ``Attempt``, ``RouteResult``,
``CallRecord``) are frozen dataclasses. Money is ``Decimal`` USD; ``None`` means unknown.
"""

from __future__ import annotations

import enum
import json
import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from paxis_router._memo import IdentityMemo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from decimal import Decimal

Role = Literal["system", "user", "assistant", "tool", "developer"]

# Metadata keys the router reads to route and account; every other metadata entry is a tag,
# recorded with each attempt for grouping and filtering (``paxis report --by tag:project``).
ROUTING_KEYS = frozenset({"team", "data_class", "skill", "task_id", "step", "replay_id"})

# The largest max_tokens a request may ask for: OpenAI's and vLLM's servers read it as a 32-bit int.
MAX_TOKENS_LIMIT = 2**31 - 1


def new_id() -> str:
    """A fresh random identifier (32 hex characters)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class _Wire(BaseModel):
    """A value in OpenAI's chat-completions wire shape: ``model_dump(exclude_none=True)`` is the
    JSON an OpenAI-compatible server accepts."""

    # defer_build: the validators are built on first use, not at import (import stays fast).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    def wire(self) -> dict[str, Any]:  # Any: a JSON document
        """This value as OpenAI's JSON shape (``None`` fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class FunctionCall(_Wire):
    """The function a tool call names, with its arguments as the model wrote them (JSON text,
    possibly malformed: judging it is a verifier's job, not the parser's)."""

    name: str
    arguments: str = "{}"


class ToolCall(_Wire):
    """One tool call of an assistant message or a completion.

    Example:
        >>> call = ToolCall(id="call_1", function=FunctionCall(name="add", arguments='{"a": 1}'))
        >>> call.name, call.parsed_arguments()
        ('add', {'a': 1})
    """

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def arguments(self) -> str:
        return self.function.arguments

    def parsed_arguments(self) -> Any:  # Any: decoded JSON
        """The arguments decoded from JSON; raises ``ValueError`` when they are not valid JSON."""
        return json.loads(self.function.arguments or "{}")


class TextPart(_Wire):
    """A text part of a message's content."""

    type: Literal["text"] = "text"
    text: str


class ImageURL(_Wire):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Wire):
    """An image part of a message's content (a URL or a ``data:`` URL), passed through to tiers
    that accept images and refused with a clear error by those that do not."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Wire):
    """One chat message, in OpenAI's shape.

    ``content`` is text or a tuple of content parts (text and images); an assistant message that
    calls tools carries ``tool_calls`` (its content may be ``None``); a ``tool`` message answers
    one call and names it with ``tool_call_id``.

    Example:
        >>> Message(role="user", content=[{"type": "text", "text": "hi"}]).text
        'hi'
    """

    role: Role
    content: str | tuple[ContentPart, ...] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Message:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not {self.role!r} ones")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError(f"only tool messages carry tool_call_id, not {self.role!r} ones")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required (only an assistant's tool call may omit it)")
        return self

    @property
    def text(self) -> str:
        """The message's text: the content string, or its text parts joined."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(p.text for p in content if isinstance(p, TextPart))

    @property
    def has_images(self) -> bool:
        return isinstance(self.content, tuple) and any(
            isinstance(p, ImagePart) for p in self.content
        )

    def map_texts(self, fn: Callable[[str], str]) -> Message:
        """A copy with ``fn`` applied to every text this message carries: content (string or
        text parts), ``name``, and each tool call's arguments (string values inside the JSON
        when it parses, the raw text when it does not)."""
        content = self.content
        if isinstance(content, str):
            content = fn(content)
        elif content is not None:
            content = tuple(
                p.model_copy(update={"text": fn(p.text)}) if isinstance(p, TextPart) else p
                for p in content
            )
        calls = self.tool_calls
        if calls is not None:
            calls = tuple(
                c.model_copy(
                    update={
                        "function": c.function.model_copy(
                            update={"arguments": map_json_text(c.function.arguments, fn)}
                        )
                    }
                )
                for c in calls
            )
        name = fn(self.name) if self.name is not None else None
        return self.model_copy(update={"content": content, "name": name, "tool_calls": calls})

    def texts(self) -> Iterator[str]:
        """Every text this message carries (what ``map_texts`` would transform), in its order,
        read without building a copy."""
        collected: list[str] = []
        content = self.content
        if isinstance(content, str):
            collected.append(content)
        elif content is not None:
            collected.extend(p.text for p in content if isinstance(p, TextPart))
        if self.tool_calls is not None:
            collect = _collector(collected)
            for call in self.tool_calls:
                map_json_text(call.function.arguments, collect)
        if self.name is not None:
            collected.append(self.name)
        return iter(collected)


class FunctionDefinition(_Wire):
    """A function the model may call: its name, description and JSON-schema parameters."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # Any: a JSON schema
    strict: bool | None = None


class Tool(_Wire):
    """A tool offered to the model (OpenAI's ``{"type": "function", "function": {...}}``)."""

    type: Literal["function"] = "function"
    function: FunctionDefinition

    @property
    def name(self) -> str:
        return self.function.name

    def texts(self) -> tuple[str, ...]:
        """Every text of the tool's definition ``ChatRequest.map_texts`` would transform (its
        description, the schema's descriptions and other data strings); read once per object."""
        return _tool_texts(self)[0]

    def text_chars(self) -> int:
        """The total length of :meth:`texts` (remembered with them)."""
        return _tool_texts(self)[1]


class _NamedFunction(_Wire):
    name: str


class NamedToolChoice(_Wire):
    """``tool_choice`` naming the one function the model must call."""

    type: Literal["function"] = "function"
    function: _NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ChatRequest(BaseModel):
    """A chat request to route.

    ``metadata`` carries routing facts: ``team`` (who pays), ``data_class`` (e.g. ``public``,
    ``internal``, ``restricted``) and optionally ``skill`` (a skill id that bypasses selection).
    The sampling and tool fields mirror OpenAI's chat-completions parameters and are forwarded to
    every tier that is called.

    Example:
        >>> req = ChatRequest.from_text("What is 2+2?", team="claims")
        >>> req.team, req.query
        ('claims', 'What is 2+2?')
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    messages: tuple[Message, ...] = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    request_id: str = Field(default_factory=new_id)
    max_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | tuple[str, ...] | None = None
    user: str | None = None
    logprobs: bool = False
    response_format: dict[str, Any] | None = None  # vendor boundary: OpenAI's free-form shape
    tools: tuple[Tool, ...] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _stringify_metadata(cls, value: Any) -> Any:  # vendor boundary: raw user input
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items() if v is not None}
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | tuple[str, ...] | None) -> Any:  # Any: as given
        if isinstance(value, tuple) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @model_validator(mode="after")
    def _tools_consistent(self) -> ChatRequest:
        names = [t.name for t in self.tools or ()]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not in tools")
        if choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs tools")
        return self

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
                return message.text
        return self.messages[-1].text

    @property
    def tags(self) -> dict[str, str]:
        """The metadata entries that are not routing keys (``ROUTING_KEYS``): who asked, for
        which project or cost centre... recorded with every attempt.

        Example:
            >>> ChatRequest.from_text("hi", team="claims", project="renewals").tags
            {'project': 'renewals'}
        """
        return {k: v for k, v in self.metadata.items() if k not in ROUTING_KEYS}

    @property
    def task(self) -> tuple[str | None, int | None]:
        """The orchestrator task this request is a step of, and the step number, if any."""
        step = self.metadata.get("step")
        return self.metadata.get("task_id"), int(step) if step and step.isdigit() else None

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the tools offered, in order."""
        return tuple(t.name for t in self.tools or ())

    @property
    def has_images(self) -> bool:
        return any(m.has_images for m in self.messages)

    def with_system(self, text: str) -> ChatRequest:
        """A copy with ``text`` prepended as (or merged into) the system message."""
        if not text:
            return self
        messages = list(self.messages)
        if messages and messages[0].role == "system":
            merged = f"{text}\n\n{messages[0].text}"
            messages[0] = Message(role="system", content=merged, name=messages[0].name)
        else:
            messages.insert(0, _system_message(text))
        return self.model_copy(update={"messages": tuple(messages)})

    def map_texts(self, fn: Callable[[str], str]) -> ChatRequest:
        """A copy with ``fn`` applied to every text this request carries to a tier: each
        message's content, name and tool-call arguments (tool results are ``tool`` messages'
        content), the string values of ``response_format`` and of the tools' descriptions and
        parameter schemas, the stop sequences and ``user``. The one place that knows every text
        field: the gate screens and redacts through it.

        Example:
            >>> req = ChatRequest.from_text("mail bob@example.com")
            >>> req.map_texts(str.upper).messages[0].content
            'MAIL BOB@EXAMPLE.COM'
        """
        tools = self.tools
        if tools is not None:
            tools = tuple(
                t.model_copy(
                    update={
                        "function": FunctionDefinition.model_validate(
                            _map_json_strings(
                                t.function.model_dump(exclude_none=True), fn, schema=True
                            )
                        )
                    }
                )
                for t in tools
            )
        stop = self.stop
        if isinstance(stop, str):
            stop = fn(stop)
        elif stop is not None:
            stop = tuple(fn(s) for s in stop)
        fmt = self.response_format
        return self.model_copy(
            update={
                "messages": tuple(m.map_texts(fn) for m in self.messages),
                "tools": tools,
                "stop": stop,
                "user": fn(self.user) if self.user is not None else None,
                "response_format": _map_json_strings(fmt, fn, schema=True) if fmt else fmt,
            }
        )

    def texts(self) -> tuple[str, ...]:
        """Every text ``map_texts`` would transform, in its order, read without building a copy
        (a tool's texts are read once per tool object: agents send the same tools every step).

        Example:
            >>> req = ChatRequest.from_text("hi").with_system("be brief")
            >>> req.texts()
            ('be brief', 'hi')
        """
        collected: list[str] = []
        collect = _collector(collected)
        for tool in self.tools or ():
            collected.extend(tool.texts())
        if isinstance(self.stop, str):
            collected.append(self.stop)
        elif self.stop is not None:
            collected.extend(self.stop)
        for message in self.messages:
            collected.extend(message.texts())
        if self.user is not None:
            collected.append(self.user)
        if self.response_format:
            _map_json_strings(self.response_format, collect, schema=True)
        return tuple(collected)


_SYSTEM_MESSAGES_KEPT = 256
_system_messages: dict[str, Message] = {}  # text -> its system message, oldest first
_system_messages_lock = threading.Lock()


def _system_message(text: str) -> Message:
    """The system message of ``text``: the same (immutable) object for the same text, so what
    is derived from it once (its JSON, its hash) serves every request it starts, as the
    instructions of a skill do on every route that selects it."""
    message = _system_messages.get(text)
    if message is None:
        message = Message(role="system", content=text)
        with _system_messages_lock:
            if len(_system_messages) >= _SYSTEM_MESSAGES_KEPT:
                del _system_messages[next(iter(_system_messages))]
            _system_messages[text] = message
    return message


def _read_tool_texts(function: FunctionDefinition) -> tuple[tuple[str, ...], int]:
    collected: list[str] = []
    _map_json_strings(function.model_dump(exclude_none=True), _collector(collected), schema=True)
    return tuple(collected), sum(map(len, collected))


# A tool definition's texts and their total length, read once per object (tools are immutable).
_TOOL_TEXTS: IdentityMemo[FunctionDefinition, tuple[tuple[str, ...], int]] = IdentityMemo(
    _read_tool_texts
)


def _tool_texts(tool: Tool) -> tuple[tuple[str, ...], int]:
    return _TOOL_TEXTS(tool.function)


def _collector(into: list[str]) -> Callable[[str], str]:
    def collect(text: str) -> str:
        into.append(text)
        return text

    return collect


def map_json_text(text: str, fn: Callable[[str], str]) -> str:
    """``fn`` applied to every string value inside a JSON text (the text comes back unchanged
    when no value changes); to the raw text when it is not valid JSON, so a model's malformed
    tool arguments still pass the gate."""
    try:
        value = json.loads(text)
    except ValueError:
        return fn(text)
    mapped = _map_json_strings(value, fn)
    return text if mapped == value else json.dumps(mapped, ensure_ascii=False)


# Keys whose string values are schema structure, not data: a gate must not rewrite them.
_SCHEMA_KEYWORDS = frozenset(
    {"type", "name", "$ref", "$schema", "$id", "format", "pattern", "required", "strict"}
)


def _map_json_strings(value: Any, fn: Callable[[str], str], schema: bool = False) -> Any:
    """``fn`` over the strings of decoded JSON: string values, object keys, and (outside a
    schema) numbers as their text: a card number sent as a JSON number is text that leaves too;
    a number ``fn`` changes becomes the string it returns. With ``schema``, the values of
    structural keywords (``type``, ``name``, ``pattern``...) and numbers are left alone."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        if schema:
            return value
        text = json.dumps(value)
        mapped = fn(text)
        return value if mapped == text else mapped
    if isinstance(value, list):
        return [_map_json_strings(v, fn, schema) for v in value]
    if isinstance(value, dict):
        return {
            fn(k): v if schema and k in _SCHEMA_KEYWORDS else _map_json_strings(v, fn, schema)
            for k, v in value.items()
        }
    return value


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
    tool_calls: tuple[ToolCall, ...] = ()  # with finish_reason "tool_calls" (content may be "")

    @property
    def mean_token_prob(self) -> float | None:
        """exp(mean log-probability) of the generated tokens, or None without logprobs.

        0.0 when any logprob is not a log-probability (NaN, infinite, or above 0): logprobs
        that cannot be trusted give no confidence, so every threshold counts them as too low
        (and nothing overflows).
        """
        logprobs = self.token_logprobs
        if not logprobs:
            return None
        if not all(math.isfinite(lp) and lp <= 0.0 for lp in logprobs):
            return 0.0
        return math.exp(sum(logprobs) / len(logprobs))


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


class AttemptStatus(enum.StrEnum):
    """How an attempt ended, classified once (by exception class) when it is made.

    ``unavailable``: the tier could not serve (down, timed out, breaker open): a route that goes
    on without it is degraded. ``failed``: another worker error (a bad request, a context window
    too small). ``denied``: the gate refused the call, nothing was sent.
    """

    ANSWERED = "answered"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one tier, accepted or not. A failed call has ``error`` and no completion.

    ``status`` says how it ended (``answered`` when there is a completion, ``failed`` otherwise
    unless the router classified it); ``called`` is False when nothing reached the tier (gate
    denied, breaker open, prompt known too long): such an attempt costs exactly zero.
    """

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
    status: AttemptStatus = AttemptStatus.FAILED
    called: bool = True

    def __post_init__(self) -> None:
        if self.completion is not None and self.status is not AttemptStatus.ANSWERED:
            object.__setattr__(self, "status", AttemptStatus.ANSWERED)

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
        used = [a.usage for a in self.attempts if a.usage]
        return Usage(
            prompt_tokens=sum(u.prompt_tokens for u in used),
            completion_tokens=sum(u.completion_tokens for u in used),
            cached_prompt_tokens=sum(u.cached_prompt_tokens for u in used),
            reasoning_tokens=sum(u.reasoning_tokens for u in used),
        )


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
    destination: str | None = None  # where the attempt's data went (``local``, ``openai:us``...)
    id: int | None = field(default=None, compare=False)
