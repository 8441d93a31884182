"""Tool calling, structured output and images through a real ``paxis serve``-style server
(uvicorn on 127.0.0.1) in front of the fake OpenAI-compatible upstream, driven by the official
openai SDK: sync, async, and its streaming helpers, which reassemble the streamed tool calls."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from openai.types.chat import (
    ChatCompletionContentPartParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
)
from pydantic import BaseModel

from paxis_router import Router, SQLiteLedger
from paxis_router.proxy import ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.workers.openai_compat import OpenAICompatWorker

KEY = "pxs-tools-server-key"
SETTINGS = ProxySettings(keys=(TeamKey(team="agents", key_sha256=hash_key(KEY), passthrough=True),))
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What's the weather in Paris?"}
]


class Weather(BaseModel):
    city: str
    temp_c: int


class GetWeather(BaseModel):
    """The weather in a city."""

    city: str


def script_calls(request: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The fake model: it calls the tool the request names (or its first), unless the last
    message is a tool result or tool_choice is "none"."""
    tools = request.get("tools")
    choice = request.get("tool_choice")
    if not tools or request["messages"][-1]["role"] == "tool" or choice == "none":
        return None
    name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
    arguments: dict[str, Any] = {"city": "Paris"}  # Any: JSON arguments
    if name != "get_weather":
        arguments["temp_c"] = 12
    return [{"name": name, "arguments": arguments}]


def script_answer(request: Mapping[str, Any]) -> str:
    """JSON when the request asks for it; the tool's result once it is back; else a greeting."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        return json.dumps({"city": "Paris", "temp_c": 12})
    last = request["messages"][-1]
    if last["role"] == "tool":
        return f"The tool says: {last['content']}"
    return "Hello from the worker."


@contextmanager
def serving(routes: Router | Mapping[str, Router]) -> Iterator[str]:
    """The proxy on uvicorn in a thread on a free loopback port; yields its /v1 URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(
        create_app(routes, SETTINGS), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


class Stack:
    """The fake upstream, the server in front of it, and the ledger."""

    def __init__(self, upstream: FakeUpstream, base_url: str, ledger: SQLiteLedger):
        self.upstream = upstream
        self.base_url = base_url
        self.ledger = ledger

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=KEY, max_retries=0)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ledger = SQLiteLedger(tmp_path_factory.mktemp("tools") / "l.db")
    with FakeUpstream(
        answer=script_answer, tool_calls=script_calls, model="worker-model", tool_call_chunk_chars=5
    ) as upstream:
        text_only = OpenAICompatWorker("local:w", "worker-model", upstream.base_url)
        vision = OpenAICompatWorker(
            "local:vision", "vision-model", upstream.base_url, accepts_images=True
        )
        routes = {
            "paxis/auto": Router(tiers=[text_only], ledger=ledger),
            "paxis/vision": Router(tiers=[vision], ledger=ledger),
        }
        with serving(routes) as base_url:
            yield Stack(upstream, base_url, ledger)


def _last_request(stack: Stack) -> dict[str, Any]:  # Any: the JSON the upstream received
    return stack.upstream.requests[-1]


def test_sync_client_gets_tool_calls_and_sends_results_back(stack: Stack) -> None:
    client = stack.client()
    first = client.chat.completions.create(
        model="paxis/auto", messages=ASK, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    sent = _last_request(stack)
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["tool_choice"] == "auto"
    # The assistant's call and the tool's result go back, as the SDK sends them.
    second = client.chat.completions.create(
        model="paxis/auto",
        messages=[
            *ASK,
            choice.message,  # type: ignore[list-item]  # the SDK takes its own message back
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 12}'},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].message.content == 'The tool says: {"temp_c": 12}'
    assert second.choices[0].finish_reason == "stop"
    replayed = _last_request(stack)["messages"]
    assert replayed[1]["tool_calls"][0]["id"] == call.id
    assert replayed[2] == {"role": "tool", "content": '{"temp_c": 12}', "tool_call_id": call.id}


async def test_async_client_named_tool_choice_and_sampling_parameters(stack: Stack) -> None:
    other: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {
            "name": "get_forecast",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
            },
        },
    }
    client = stack.async_client()
    reply = await client.chat.completions.create(
        model="paxis/auto",
        messages=ASK,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "get_forecast"}},
        parallel_tool_calls=False,
        stop=["\n\n"],
        top_p=0.9,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        user="end-user-1",
    )
    await client.close()
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_forecast"
    sent = _last_request(stack)
    assert {k: sent[k] for k in ("tool_choice", "parallel_tool_calls", "stop", "top_p")} == {
        "tool_choice": {"type": "function", "function": {"name": "get_forecast"}},
        "parallel_tool_calls": False,
        "stop": ["\n\n"],
        "top_p": 0.9,
    }
    assert (sent["seed"], sent["presence_penalty"], sent["frequency_penalty"], sent["user"]) == (
        7,
        0.5,
        0.25,
        "end-user-1",
    )


def test_stream_helper_reassembles_tool_calls_and_parses_strict_arguments(stack: Stack) -> None:
    client = stack.client()
    with client.chat.completions.stream(
        model="paxis/auto",
        messages=ASK,
        tools=[openai.pydantic_function_tool(GetWeather, name="get_weather")],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds
    assert kinds.count("tool_calls.function.arguments.done") == 1
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.parsed_arguments == GetWeather(city="Paris")
    assert _last_request(stack)["tool_choice"]["function"]["name"] == "get_weather"


def test_stream_helper_plain_text_and_json_mode(stack: Stack) -> None:
    client = stack.client()
    with client.chat.completions.stream(model="paxis/auto", messages=ASK) as stream:
        texts = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(texts) == final.choices[0].message.content == "Hello from the worker."
    with client.chat.completions.stream(
        model="paxis/auto", messages=ASK, response_format={"type": "json_object"}
    ) as stream:
        content = stream.get_final_completion().choices[0].message.content
    assert json.loads(content or "") == {"city": "Paris", "temp_c": 12}


def test_streamed_tool_call_deltas_are_shaped_as_openai_sends_them(stack: Stack) -> None:
    with httpx.Client(timeout=30) as http:
        response = http.post(
            f"{stack.base_url}/chat/completions",
            json={"model": "paxis/auto", "messages": ASK, "tools": [WEATHER_TOOL], "stream": True},
            headers={"authorization": f"Bearer {KEY}"},
        )
    events = [b[6:] for b in response.text.split("\n\n") if b.startswith("data: ")]
    assert events[-1] == "[DONE]"
    choices = [json.loads(e)["choices"][0] for e in events[:-1]]
    first = choices[0]["delta"]
    assert first["role"] == "assistant"
    (head,) = first["tool_calls"]
    assert head["index"] == 0
    assert head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert head["id"]
    pieces = [c["delta"]["tool_calls"][0] for c in choices[1:-1]]
    assert all(set(p) == {"index", "function"} for p in pieces)
    assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == {"city": "Paris"}
    assert choices[-1] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }


@pytest.mark.parametrize("passthrough", [False, True], ids=["verified", "passthrough"])
def test_streamed_tool_calls_verified_and_passthrough(stack: Stack, passthrough: bool) -> None:
    client = stack.client()
    headers = {"x-paxis-passthrough": "1"} if passthrough else {}
    raw = client.chat.completions.with_raw_response.create(
        model="paxis/auto",
        messages=ASK,
        tools=[WEATHER_TOOL],
        stream=True,
        extra_headers=headers,
    )
    chunks = list(raw.parse())
    assert raw.headers.get("x-paxis-passthrough") == ("true" if passthrough else None)
    # A passthrough asks the tier for a stream; a verified stream is the routed whole answer.
    assert stack.upstream.requests[-1].get("stream") is (True if passthrough else None)
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        for piece in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(piece.index, ["", ""])
            if piece.function is not None:
                entry[0] += piece.function.name or ""
                entry[1] += piece.function.arguments or ""
    assert calls == {0: ["get_weather", '{"city":"Paris"}']}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_structured_output_json_schema_and_json_mode(stack: Stack) -> None:
    client = stack.client()
    parsed = client.chat.completions.parse(
        model="paxis/auto", messages=ASK, response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="Paris", temp_c=12)
    assert _last_request(stack)["response_format"]["type"] == "json_schema"
    with client.chat.completions.stream(
        model="paxis/auto", messages=ASK, response_format=Weather
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Weather(city="Paris", temp_c=12)
    mode = client.chat.completions.create(
        model="paxis/auto", messages=ASK, response_format={"type": "json_object"}
    )
    assert json.loads(mode.choices[0].message.content or "") == {"city": "Paris", "temp_c": 12}
    assert _last_request(stack)["response_format"] == {"type": "json_object"}


IMAGE: list[ChatCompletionContentPartParam] = [
    {"type": "text", "text": "What is in this picture?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
]


async def test_async_client_structured_output_and_json_mode(stack: Stack) -> None:
    client = stack.async_client()
    parsed = await client.chat.completions.parse(
        model="paxis/auto", messages=ASK, response_format=Weather
    )
    mode = await client.chat.completions.create(
        model="paxis/auto", messages=ASK, response_format={"type": "json_object"}
    )
    await client.close()
    assert parsed.choices[0].message.parsed == Weather(city="Paris", temp_c=12)
    assert json.loads(mode.choices[0].message.content or "") == {"city": "Paris", "temp_c": 12}


def test_images_reach_a_vision_tier_and_are_a_400_where_no_tier_reads_them(stack: Stack) -> None:
    client = stack.client()
    before = len(stack.upstream.requests)
    with pytest.raises(openai.BadRequestError, match="no tier of this route reads images") as err:
        client.chat.completions.create(
            model="paxis/auto", messages=[{"role": "user", "content": IMAGE}]
        )
    assert err.value.param == "messages[0].content[1]"
    assert err.value.code == "image_not_supported"
    assert len(stack.upstream.requests) == before  # refused before any call
    seen = client.chat.completions.create(
        model="paxis/vision", messages=[{"role": "user", "content": IMAGE}]
    )
    assert seen.choices[0].message.content == "Hello from the worker."
    assert _last_request(stack)["messages"][0]["content"] == IMAGE
    with client.chat.completions.stream(
        model="paxis/vision", messages=[{"role": "user", "content": IMAGE}]
    ) as stream:
        streamed = stream.get_final_completion().choices[0].message.content
    assert streamed == "Hello from the worker."


def test_the_dash_alias_and_one_model_by_id(stack: Stack) -> None:
    client = stack.client()
    reply = client.chat.completions.create(model="paxis-auto", messages=ASK)
    assert reply.choices[0].message.content == "Hello from the worker."
    assert client.models.retrieve("paxis/auto").id == "paxis/auto"
    assert client.models.retrieve("paxis-vision").id == "paxis-vision"
    assert sorted(m.id for m in client.models.list()) == ["paxis/auto", "paxis/vision"]
    with pytest.raises(openai.NotFoundError, match="does not exist") as err:
        client.models.retrieve("gpt-9")
    assert err.value.code == "model_not_found"


def test_a_tool_call_is_checked_and_recorded_in_the_ledger(stack: Stack) -> None:
    client = stack.client()
    raw = client.chat.completions.with_raw_response.create(
        model="paxis/auto", messages=ASK, tools=[WEATHER_TOOL]
    )
    rows = [r for r in stack.ledger.rows() if r.route_id == raw.headers["x-paxis-route-id"]]
    assert [(r.tier, r.team, r.finish_reason, r.passed) for r in rows] == [
        ("local:w", "agents", "tool_calls", True)
    ]
    # The router added the tool-call check the request asked for (an offered tool, valid JSON
    # arguments that fit its schema).
    assert [v.verifier for v in rows[0].verdicts] == ["tool_calls"]
