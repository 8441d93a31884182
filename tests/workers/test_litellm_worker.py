"""LiteLLMWorker against litellm's mock_response: strings and provider exception instances."""

from __future__ import annotations

import os
from decimal import Decimal

import httpx
import pytest

from paxis_router.errors import (
    ContextWindowExceeded,
    UnsupportedContent,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.pricing import TokenPrice
from paxis_router.types import ChatRequest
from paxis_router.workers.litellm import LiteLLMWorker, load_litellm, provider_of

# litellm is imported through the worker module so that its price map stays local.
litellm = load_litellm()

MODEL = "gpt-4o"


def _worker(mock: object, **kwargs: object) -> LiteLLMWorker:
    return LiteLLMWorker(MODEL, completion_kwargs={"mock_response": mock}, **kwargs)  # type: ignore[arg-type]


def _request() -> ChatRequest:
    return ChatRequest.from_text("What is 6*7?", team="claims")


async def test_mock_answer_becomes_a_completion() -> None:
    completion = await _worker("42").complete(_request(), None)
    assert completion.content == "42"
    assert completion.model == MODEL
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0


async def test_local_cost_map_is_set_in_the_call_path() -> None:
    await _worker("ok").complete(_request(), None)
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_defaults_name_price_destination() -> None:
    worker = LiteLLMWorker(MODEL)
    assert worker.name == "frontier:gpt-4o"
    assert worker.destination == "openai"
    assert isinstance(worker.price, TokenPrice)
    assert worker.price.input_usd_per_token == Decimal("0.0000025")
    assert worker.max_context_tokens == 128000


def test_explicit_overrides() -> None:
    price = TokenPrice.per_million("1", "2")
    worker = LiteLLMWorker(MODEL, name="frontier:main", price=price, destination="openai:eu")
    assert (worker.name, worker.price, worker.destination) == ("frontier:main", price, "openai:eu")


def test_unknown_model_has_unknown_price(caplog: pytest.LogCaptureFixture) -> None:
    worker = LiteLLMWorker("acme/never-heard-of-it-9000")
    assert worker.price is None
    assert worker.destination == "acme"
    assert "never-heard-of-it-9000" in caplog.text


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("anthropic/claude-3-5-sonnet-20240620", "anthropic"),
        ("claude-3-opus-20240229", "anthropic"),
        ("gemini-1.5-pro", "gemini"),
        ("gpt-4o-mini", "openai"),
        ("bedrock/anthropic.claude-v2", "bedrock"),
    ],
)
def test_provider_of(model: str, provider: str) -> None:
    assert provider_of(model) == provider


def _exc(cls: type[Exception], **extra: object) -> Exception:
    return cls(message="boom", llm_provider="openai", model=MODEL, **extra)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("exc", "expected", "transient"),
    [
        (_exc(litellm.RateLimitError), WorkerUnavailable, True),
        (_exc(litellm.ServiceUnavailableError), WorkerUnavailable, True),
        (_exc(litellm.InternalServerError), WorkerUnavailable, True),
        (_exc(litellm.APIConnectionError), WorkerUnavailable, True),
        (_exc(litellm.AuthenticationError), WorkerUnavailable, False),
        (_exc(litellm.NotFoundError), WorkerUnavailable, False),
        (
            _exc(
                litellm.PermissionDeniedError,
                response=httpx.Response(403, request=httpx.Request("POST", "https://x.test")),
            ),
            WorkerUnavailable,
            False,
        ),
    ],
)
async def test_unavailable_mapping(
    exc: Exception, expected: type[WorkerUnavailable], transient: bool
) -> None:
    with pytest.raises(expected, match=r"frontier:gpt-4o: .*boom") as info:
        await _worker(exc).complete(_request(), None)
    assert info.value.transient is transient
    assert info.value.__cause__ is not None


async def test_rate_limit_status_and_retry_after() -> None:
    exc = _exc(litellm.RateLimitError, headers={"Retry-After": "7"})
    with pytest.raises(WorkerUnavailable) as info:
        await _worker(exc).complete(_request(), None)
    assert info.value.status_code == 429
    assert info.value.retry_after_s == 7.0


async def test_timeout_mapping() -> None:
    with pytest.raises(WorkerTimeout, match="did not answer within"):
        await _worker(_exc(litellm.Timeout)).complete(_request(), None)


async def test_context_window_mapping() -> None:
    with pytest.raises(ContextWindowExceeded, match="context window of gpt-4o"):
        await _worker(_exc(litellm.ContextWindowExceededError)).complete(_request(), None)


async def test_bad_request_is_a_plain_worker_error() -> None:
    with pytest.raises(WorkerError, match="BadRequestError from openai") as info:
        await _worker(_exc(litellm.BadRequestError)).complete(_request(), None)
    assert type(info.value) is WorkerError


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        LiteLLMWorker(MODEL, timeout_s=-1)


# --- tools, tool calls, images ------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _tool_request() -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "response_format": {"type": "text"},
            "stop": ["\n\n"],
            "seed": 5,
            "top_p": 0.5,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "user": "u-9",
            "max_tokens": 32,
            "temperature": 0.0,
        }
    )


async def test_every_request_field_reaches_litellm_and_tool_calls_come_back() -> None:
    logged: list[dict[str, object]] = []
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    worker = LiteLLMWorker(
        MODEL,
        completion_kwargs={
            "mock_response": "",
            "mock_tool_calls": calls,
            "logger_fn": logged.append,  # litellm's per-call log hook: what it was given
        },
    )
    completion = await worker.complete(_tool_request(), None)
    params = logged[0]["optional_params"]
    assert isinstance(params, dict)
    assert {k: params[k] for k in params if k not in ("extra_body", "max_retries")} == {
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "text"},
        "stop": ["\n\n"],
        "seed": 5,
        "top_p": 0.5,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "user": "u-9",
        "max_tokens": 32,
        "temperature": 0.0,
    }
    assert [(c.id, c.name, c.parsed_arguments()) for c in completion.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"})
    ]


async def test_messages_go_to_litellm_in_openais_shape() -> None:
    logged: list[dict[str, object]] = []
    request = ChatRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
            "tools": [WEATHER],
        }
    )
    worker = LiteLLMWorker(
        MODEL, completion_kwargs={"mock_response": "ok", "logger_fn": logged.append}
    )
    await worker.complete(request, None)
    assert logged[0]["messages"] == [m.wire() for m in request.messages]


def _image_request() -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}},
                    ],
                }
            ]
        }
    )


async def test_images_follow_litellms_map_of_vision_models() -> None:
    seeing = _worker("a cat")
    blind = LiteLLMWorker("gpt-3.5-turbo", completion_kwargs={"mock_response": "?"})
    told = LiteLLMWorker(
        "gpt-3.5-turbo", completion_kwargs={"mock_response": "a dog"}, accepts_images=True
    )
    assert (seeing.accepts_images, blind.accepts_images) == (True, False)
    assert (await seeing.complete(_image_request(), None)).content == "a cat"
    assert (await told.complete(_image_request(), None)).content == "a dog"
    with pytest.raises(UnsupportedContent, match=r"gpt-3\.5-turbo\) does not read images"):
        await blind.complete(_image_request(), None)
