"""Tools, tool calls, content parts and every sampling field, over real sockets to a fake upstream.

The fake upstream records each JSON body it received and rejects what OpenAI would reject, so
these tests assert on the exact JSON a worker sent and on what it parsed back.
"""

from __future__ import annotations

import doctest
import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from paxis_router import Router, SQLiteLedger
from paxis_router.errors import UnsupportedContent, WorkerError
from paxis_router.pricing import GpuHourPrice
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.types import (
    ChatRequest,
    Completion,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
)
from paxis_router.workers import _wire
from paxis_router.workers._wire import LOCAL_FIELDS, SENT_FIELDS, ToolCallAssembler, wire_message
from paxis_router.workers.openai_compat import OpenAICompatWorker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    Closing = Callable[[OpenAICompatWorker], OpenAICompatWorker]  # the closing fixture

WEATHER = Tool(
    function=FunctionDefinition(
        name="get_weather",
        description="Current weather in a city",
        parameters={
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    )
)
TIME = Tool(function=FunctionDefinition(name="get_time", parameters={"type": "object"}))
CALLS: list[dict[str, Any]] = [  # Any: scripted JSON
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"name": "get_time", "arguments": {"zone": "Europe/Paris"}},
]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="It is sunny", model="qwen-ft", tool_calls=_calls_when_tools) as up:
        yield up


def _calls_when_tools(request: dict[str, Any]) -> list[dict[str, Any]] | None:  # Any: JSON
    return CALLS if request.get("tools") and request.get("tool_choice") != "none" else None


def _history() -> tuple[Message, ...]:
    call = ToolCall(
        id="call_a", function=FunctionCall(name="get_weather", arguments='{"city": "Oslo"}')
    )
    return (
        Message(role="system", content="Use the tools."),
        Message(role="user", content=(TextPart(text="Weather in Oslo"), TextPart(text="?"))),
        Message(role="assistant", content=None, tool_calls=(call,)),
        Message(role="tool", tool_call_id="call_a", content='{"temp_c": 3}'),
        Message(role="user", content="And in Paris, and the time there?"),
    )


def _full_request() -> ChatRequest:
    return ChatRequest(
        messages=_history(),
        metadata={"team": "claims", "data_class": "internal"},
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
        presence_penalty=0.1,
        frequency_penalty=-0.2,
        seed=11,
        stop=("\n\n", "END"),
        user="u-17",
        response_format={"type": "text"},
        tools=(WEATHER, TIME),
        tool_choice="auto",
        parallel_tool_calls=True,
    )


def test_sent_and_local_fields_cover_every_request_field() -> None:
    handled = set(SENT_FIELDS) | LOCAL_FIELDS | {"messages", "logprobs"}
    assert handled == set(ChatRequest.model_fields)


@pytest.mark.parametrize(
    "message",
    [
        Message(role="user", content="hi"),
        Message(role="user", content="hi", name="bob"),
        *_history(),
        Message(
            role="user",
            content=(ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA")),),
        ),
    ],
)
def test_wire_message_is_openais_shape(message: Message) -> None:
    assert wire_message(message) == message.wire()


async def test_every_request_field_reaches_the_tier_exactly(
    upstream: FakeUpstream, closing: Closing
) -> None:
    worker = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=5))
    await worker.complete(_full_request(), None)
    await worker.aclose()
    assert upstream.requests == [
        {
            "model": "qwen-ft",
            "messages": [
                {"role": "system", "content": "Use the tools."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather in Oslo"},
                        {"type": "text", "text": "?"},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "content": '{"temp_c": 3}', "tool_call_id": "call_a"},
                {"role": "user", "content": "And in Paris, and the time there?"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "presence_penalty": 0.1,
            "frequency_penalty": -0.2,
            "seed": 11,
            "stop": ["\n\n", "END"],
            "user": "u-17",
            "response_format": {"type": "text"},
            "tools": [WEATHER.wire(), TIME.wire()],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }
    ]


async def test_a_named_tool_choice_is_sent_in_openais_shape(
    upstream: FakeUpstream, closing: Closing
) -> None:
    choice = NamedToolChoice.model_validate({"function": {"name": "get_time"}})
    request = _full_request().model_copy(update={"tool_choice": choice})
    worker = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=5))
    await worker.complete(request, None)
    await worker.aclose()
    sent = upstream.requests[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def _expected_calls() -> tuple[tuple[str, dict[str, Any]], ...]:  # Any: decoded JSON
    return tuple((c["name"], c["arguments"]) for c in CALLS)


async def test_tool_calls_come_back_from_a_json_answer(
    upstream: FakeUpstream, closing: Closing
) -> None:
    worker = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=5))
    completion = await worker.complete(_full_request(), None)
    plain = await worker.complete(_full_request().model_copy(update={"tool_choice": "none"}), None)
    await worker.aclose()
    assert completion.finish_reason == "tool_calls"
    assert completion.content == ""
    got = tuple((c.name, c.parsed_arguments()) for c in completion.tool_calls)
    assert got == _expected_calls()
    assert [c.id for c in completion.tool_calls] == ["call_1_0", "call_1_1"]
    assert (plain.content, plain.tool_calls, plain.finish_reason) == ("It is sunny", (), "stop")


async def _stream(worker: OpenAICompatWorker, request: ChatRequest) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    finals: list[Completion] = []
    async for item in worker.stream(request, None):
        if isinstance(item, Completion):
            finals.append(item)
        else:
            deltas.append(item)
    assert len(finals) == 1
    return deltas, finals[0]


@pytest.mark.parametrize("interleave", [False, True], ids=["one-after-another", "interleaved"])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
async def test_streamed_tool_call_deltas_are_assembled_by_index(
    interleave: bool,
    chunk: int,
    closing: Closing,
) -> None:
    with FakeUpstream(
        tool_calls=CALLS, tool_call_chunk_chars=chunk, interleave_tool_calls=interleave
    ) as up:
        worker = closing(OpenAICompatWorker("local:qwen", "m", up.base_url, timeout_s=5))
        deltas, final = await _stream(worker, _full_request())
        await worker.aclose()
    assert deltas == []
    assert final.finish_reason == "tool_calls"
    assert tuple((c.name, c.parsed_arguments()) for c in final.tool_calls) == _expected_calls()
    assert [c.id for c in final.tool_calls] == ["call_1_0", "call_1_1"]
    assert final.usage is not None


async def test_malformed_arguments_come_back_as_sent_for_the_verifiers(closing: Closing) -> None:
    broken = [{"name": "get_weather", "arguments": '{"city": "Par'}]
    with FakeUpstream(tool_calls=broken, tool_call_chunk_chars=4) as up:
        worker = closing(OpenAICompatWorker("local:qwen", "m", up.base_url, timeout_s=5))
        whole = await worker.complete(_full_request(), None)
        _, streamed = await _stream(worker, _full_request())
        await worker.aclose()
    assert [c.arguments for c in whole.tool_calls] == ['{"city": "Par']
    assert [c.arguments for c in streamed.tool_calls] == ['{"city": "Par']


async def test_a_tool_result_answering_no_call_is_rejected_by_the_upstream(
    upstream: FakeUpstream,
    closing: Closing,
) -> None:
    orphan = ChatRequest(
        messages=(
            Message(role="user", content="hi"),
            Message(role="tool", tool_call_id="call_zzz", content="42"),
        )
    )
    worker = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=5))
    with pytest.raises(WorkerError, match=r"HTTP 400 .*'call_zzz' answers no earlier"):
        await worker.complete(orphan, None)
    await worker.aclose()


def test_the_assembler_keeps_the_first_id_and_joins_name_and_arguments() -> None:
    calls = ToolCallAssembler()
    calls.add([{"index": 1, "id": "b", "function": {"name": "get_", "arguments": '{"x"'}}])
    calls.add([{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}])
    calls.add([{"index": 1, "id": "b", "function": {"name": "time", "arguments": ": 1}"}}])
    calls.add([{"function": {"arguments": ""}}, "not a delta"])
    assert [(c.id, c.name, c.arguments) for c in calls.result()] == [
        ("a", "f", "{}"),
        ("b", "get_time", '{"x": 1}'),
    ]


def test_tool_calls_of_keeps_malformed_calls_as_values() -> None:
    raw = [
        {"function": {"arguments": {"a": 1}}},
        "junk",
        {"id": "c2", "function": {"name": "g"}},
    ]
    calls = _wire.tool_calls_of(raw)
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_0", "", '{"a": 1}'),
        ("c2", "g", ""),
    ]
    assert _wire.tool_calls_of(None) == ()


def test_wire_docstring_examples() -> None:
    result = doctest.testmod(_wire)
    assert result.attempted > 0
    assert result.failed == 0


# --- images -------------------------------------------------------------------------------------

IMAGE = ImagePart(image_url=ImageURL(url="data:image/png;base64,iVBORw0KGgo=", detail="low"))


def _image_request() -> ChatRequest:
    content = (TextPart(text="What is in this picture?"), IMAGE)
    return ChatRequest(messages=(Message(role="user", content=content),))


async def test_a_text_only_tier_refuses_images_without_calling(
    upstream: FakeUpstream, closing: Closing
) -> None:
    worker = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=5))
    with pytest.raises(UnsupportedContent, match=r"local:qwen: .*carries an image.*text-only"):
        await worker.complete(_image_request(), None)
    with pytest.raises(UnsupportedContent, match="accepts_images=True"):
        await _stream(worker, _image_request())
    await worker.aclose()
    assert upstream.requests == []


async def test_a_vision_tier_gets_the_image_part_as_sent(
    upstream: FakeUpstream, closing: Closing
) -> None:
    worker = closing(
        OpenAICompatWorker(
            "local:vl", "qwen-vl", upstream.base_url, timeout_s=5, accepts_images=True
        )
    )
    completion = await worker.complete(_image_request(), None)
    await worker.aclose()
    assert completion.content == "It is sunny"
    assert upstream.requests[-1]["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
    }


async def test_the_router_skips_a_text_only_tier_at_zero_cost(
    upstream: FakeUpstream,
    tmp_path: Path,
    closing: Closing,
) -> None:
    price = GpuHourPrice(usd_per_gpu_hour=Decimal("2"))
    text = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, price=price))
    vision = closing(
        OpenAICompatWorker(
            "local:vl", "qwen-vl", upstream.base_url, price=price, accepts_images=True
        )
    )
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(tiers=[text, vision], ledger=ledger)
    result = await router.route(_image_request())
    await router.aclose()
    rows = ledger.rows()
    ledger.close()
    assert (result.tier, result.content) == ("local:vl", "It is sunny")
    assert (rows[0].tier, rows[0].error_type, rows[0].cost_usd) == (
        "local:qwen",
        "UnsupportedContent",
        Decimal(0),
    )
    assert [r["model"] for r in upstream.requests] == ["qwen-vl"]


# --- the httpx path (a caller's client) ---------------------------------------------------------


async def test_tool_calls_over_a_callers_http_client(closing: Closing) -> None:
    seen: list[dict[str, Any]] = []  # Any: JSON

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'},
                }
            ],
        }
        body = {"model": "m", "choices": [{"message": message, "finish_reason": "tool_calls"}]}
        return httpx.Response(200, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    worker = closing(OpenAICompatWorker("local:m", "m", "https://vllm.test/v1", http_client=client))
    completion = await worker.complete(_full_request(), None)
    await worker.aclose()
    assert seen[0]["tools"] == [WEATHER.wire(), TIME.wire()]
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("call_9", "get_time", '{"zone": "UTC"}')
    ]
    assert completion.finish_reason == "tool_calls"
