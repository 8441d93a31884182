"""Agent frameworks calling tools through paxis, each with the real library against real
servers on loopback: the fake OpenAI-compatible upstream scripted to call tools, behind a
Router in-process (LangChain's PaxisChatModel, the LiteLLM provider) or behind ``paxis
serve`` on uvicorn (the OpenAI Agents SDK, with OpenAIChatCompletionsModel)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypedDict

import openai
import pytest
import uvicorn
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    RunConfig,
    Runner,
    function_tool,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel

from paxis_router import Router, SQLiteLedger
from paxis_router.errors import EscalationExhausted
from paxis_router.integrations.langchain import PaxisChatModel
from paxis_router.integrations.litellm import register
from paxis_router.proxy import ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.workers.background_loop import run_sync
from paxis_router.workers.litellm import load_litellm
from paxis_router.workers.openai_compat import OpenAICompatWorker

KEY = "pxs-frameworks-key"
ASK = "What's the weather in Paris?"
WEATHER_TOOL: dict[str, Any] = {  # Any: a JSON tool definition
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


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    temp_c: int


class WeatherDict(TypedDict):
    """The weather in a city."""

    city: str
    temp_c: int


def script_calls(request: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The fake model: calls the tool tool_choice names (else the first offered) with
    arguments that fit it, unless the last message is a tool result."""
    tools = request.get("tools")
    choice = request.get("tool_choice")
    if not tools or request["messages"][-1]["role"] == "tool" or choice == "none":
        return None
    name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
    properties = next(t for t in tools if t["function"]["name"] == name)["function"]
    fields = (properties.get("parameters") or {}).get("properties", {})
    arguments = {"city": "Paris", "temp_c": 12}
    return [{"name": name, "arguments": {k: v for k, v in arguments.items() if k in fields}}]


def script_answer(request: Mapping[str, Any]) -> str:
    """JSON when asked for; the tool's result once it is back; else a greeting."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        return json.dumps({"city": "Paris", "temp_c": 12})
    last = request["messages"][-1]
    if last["role"] == "tool":
        return f"The tool says: {last['content']}"
    return "Hello from the worker."


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(
        answer=script_answer, tool_calls=script_calls, model="worker-model", tool_call_chunk_chars=4
    ) as up:
        yield up


def _router(upstream: FakeUpstream, ledger: SQLiteLedger | None = None, **worker: Any) -> Router:
    # Any: OpenAICompatWorker keyword arguments
    tier = OpenAICompatWorker("local:w", "worker-model", upstream.base_url, **worker)
    return Router(tiers=[tier], ledger=ledger)


@pytest.fixture
def routers(upstream: FakeUpstream) -> Iterator[Callable[..., Router]]:
    """Routers for synchronous callers (they run on the shared background loop); their
    connections are closed there afterwards. Async tests close theirs themselves."""
    made: list[Router] = []

    def make(**worker: Any) -> Router:  # Any: OpenAICompatWorker keyword arguments
        made.append(_router(upstream, **worker))
        return made[-1]

    yield make
    for router in made:
        run_sync(router.aclose())


# --- LangChain -----------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return json.dumps({"city": city, "temp_c": 12})


def test_langchain_bind_tools_calls_the_tool_and_reads_its_result(
    upstream: FakeUpstream, routers: Callable[..., Router]
) -> None:
    chat = PaxisChatModel(router=routers(), team="lc")
    with_tools = chat.bind_tools([get_weather], tool_choice="any", parallel_tool_calls=False)
    first = with_tools.invoke([HumanMessage(ASK)])
    assert isinstance(first, AIMessage)
    (call,) = first.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    assert first.response_metadata["finish_reason"] == "tool_calls"
    sent = upstream.requests[-1]
    assert sent["tool_choice"] == "required"
    assert sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    result = ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"] or "")
    # tool_choice "any" (required) would force another call: the follow-up lets the model answer.
    second = chat.bind_tools([get_weather]).invoke([HumanMessage(ASK), first, result])
    assert second.content == 'The tool says: {"city": "Paris", "temp_c": 12}'
    replayed = upstream.requests[-1]["messages"]
    assert replayed[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert replayed[2]["tool_call_id"] == call["id"]


async def test_langchain_ainvoke_with_a_named_tool_choice(upstream: FakeUpstream) -> None:
    router = _router(upstream)
    chat = PaxisChatModel(router=router)
    reply = await chat.bind_tools([WEATHER_TOOL, Weather], tool_choice="Weather").ainvoke(ASK)
    await router.aclose()
    assert isinstance(reply, AIMessage)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("Weather", {"city": "Paris", "temp_c": 12})
    ]
    assert upstream.requests[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "Weather"},
    }


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
@pytest.mark.parametrize("schema", [Weather, WeatherDict], ids=["pydantic", "typeddict"])
def test_langchain_with_structured_output(
    upstream: FakeUpstream, routers: Callable[..., Router], method: str, schema: type
) -> None:
    chat = PaxisChatModel(router=routers())
    out = chat.with_structured_output(schema, method=method).invoke(ASK)  # type: ignore[arg-type]
    expected = {"city": "Paris", "temp_c": 12}
    assert out == (Weather(**expected) if schema is Weather else expected)
    sent = upstream.requests[-1]
    if method == "function_calling":
        assert sent["tool_choice"]["function"]["name"] == schema.__name__
        assert "response_format" not in sent
    else:
        kind = "json_schema" if method == "json_schema" else "json_object"
        assert sent["response_format"]["type"] == kind
        assert "tools" not in sent


def test_langchain_structured_output_include_raw(routers: Callable[..., Router]) -> None:
    chat = PaxisChatModel(router=routers())
    out = chat.with_structured_output(Weather, include_raw=True).invoke(ASK)
    assert isinstance(out, dict)
    assert out["parsed"] == Weather(city="Paris", temp_c=12)
    assert out["parsing_error"] is None
    assert out["raw"].tool_calls[0]["name"] == "Weather"


IMAGE_BLOCK = {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"}


def test_langchain_images_reach_a_vision_tier_and_a_text_only_one_refuses(
    upstream: FakeUpstream, routers: Callable[..., Router]
) -> None:
    message = HumanMessage([{"type": "text", "text": "What is this?"}, IMAGE_BLOCK])
    before = len(upstream.requests)
    text_only = PaxisChatModel(router=routers())
    with pytest.raises(EscalationExhausted) as err:
        text_only.invoke([message])
    assert [a.error_type for a in err.value.attempts] == ["UnsupportedContent"]
    assert len(upstream.requests) == before  # refused before any call
    vision = PaxisChatModel(router=routers(accepts_images=True))
    assert vision.invoke([message]).content == "Hello from the worker."
    assert upstream.requests[-1]["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }


# --- LiteLLM -------------------------------------------------------------------------------


@pytest.fixture
def litellm(routers: Callable[..., Router]) -> Iterator[Any]:  # Any: the litellm module
    """litellm with the paxis provider registered (synchronous calls)."""
    module: Any = load_litellm()  # Any: the litellm module, untyped
    saved = list(module.custom_provider_map)
    register(routers(), team="ll")
    yield module
    module.custom_provider_map = saved


def test_litellm_passes_tools_and_returns_tool_calls(litellm: Any, upstream: FakeUpstream) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": ASK}]  # Any: JSON
    first = litellm.completion(
        model="paxis/auto",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        stop=["END"],
        top_p=0.5,
        seed=3,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    sent = upstream.requests[-1]
    assert (sent["tool_choice"], sent["parallel_tool_calls"], sent["stop"]) == (
        "required",
        False,
        ["END"],
    )
    assert (sent["top_p"], sent["seed"]) == (0.5, 3)
    messages += [
        choice.message.model_dump(),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 12}'},
    ]
    second = litellm.completion(model="paxis/auto", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == 'The tool says: {"temp_c": 12}'
    assert upstream.requests[-1]["messages"][2]["tool_call_id"] == call.id


async def test_litellm_response_format_json_schema_and_json_mode(upstream: FakeUpstream) -> None:
    litellm: Any = load_litellm()  # Any: the litellm module, untyped
    saved = list(litellm.custom_provider_map)
    router = _router(upstream)
    register(router, team="ll")
    try:
        parsed = await litellm.acompletion(
            model="paxis/auto", messages=[{"role": "user", "content": ASK}], response_format=Weather
        )
        assert Weather.model_validate_json(parsed.choices[0].message.content) == Weather(
            city="Paris", temp_c=12
        )
        assert upstream.requests[-1]["response_format"]["type"] == "json_schema"
        mode = await litellm.acompletion(
            model="paxis/auto",
            messages=[{"role": "user", "content": ASK}],
            response_format={"type": "json_object"},
        )
        assert json.loads(mode.choices[0].message.content) == {"city": "Paris", "temp_c": 12}
    finally:
        litellm.custom_provider_map = saved
        await router.aclose()


def test_litellm_images_reach_a_vision_tier_and_a_text_only_one_refuses(
    upstream: FakeUpstream, routers: Callable[..., Router]
) -> None:
    module: Any = load_litellm()  # Any: the litellm module, untyped
    saved = list(module.custom_provider_map)
    register({"text": routers(), "vision": routers(accepts_images=True)})
    image = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    messages = [{"role": "user", "content": image}]
    try:
        # litellm wraps a custom provider's exception in its APIConnectionError.
        with pytest.raises(
            module.exceptions.APIConnectionError,
            match=r"no tier gave an acceptable answer.*UnsupportedContent",
        ):
            module.completion(model="paxis/text", messages=messages)
        seen = module.completion(model="paxis/vision", messages=messages)
    finally:
        module.custom_provider_map = saved
    assert seen.choices[0].message.content == "Hello from the worker."
    assert upstream.requests[-1]["messages"][0]["content"] == image


def test_litellm_stream_carries_the_tool_calls(litellm: Any, upstream: FakeUpstream) -> None:
    chunks = list(
        litellm.completion(
            model="paxis/auto",
            messages=[{"role": "user", "content": ASK}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    rebuilt = litellm.stream_chunk_builder(chunks)
    (call,) = rebuilt.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert rebuilt.choices[0].finish_reason == "tool_calls"


# --- OpenAI Agents SDK through paxis serve --------------------------------------------------


@contextmanager
def serving(router: Router) -> Iterator[str]:
    """``paxis serve``'s app on uvicorn in a thread on a free loopback port; its /v1 URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    settings = ProxySettings(keys=(TeamKey(team="agents", key_sha256=hash_key(KEY)),))
    config = uvicorn.Config(
        create_app(router, settings), log_level="warning", access_log=False, lifespan="on"
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


@function_tool
def weather_tool(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return json.dumps({"city": city, "temp_c": 12})


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ledger = SQLiteLedger(tmp_path_factory.mktemp("agents") / "l.db")
    with serving(_router(upstream, ledger)) as base_url:
        yield base_url


NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
async def test_agents_sdk_runs_an_agent_with_a_function_tool(
    upstream: FakeUpstream, proxy: str, streamed: bool
) -> None:
    client = openai.AsyncOpenAI(base_url=proxy, api_key=KEY, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Answer with the tool's help.",
        tools=[weather_tool],
        model=OpenAIChatCompletionsModel(model="paxis/auto", openai_client=client),
        model_settings=ModelSettings(tool_choice="required", temperature=0.2),
    )
    before = len(upstream.requests)
    if streamed:
        run = Runner.run_streamed(agent, ASK, run_config=NO_TRACING)
        kinds = [event.type async for event in run.stream_events()]
        assert "raw_response_event" in kinds
        output = run.final_output
        # The SDK streamed from the proxy; the proxy streamed the verified answer, so it asked
        # its tier for whole answers.
        assert not any(r.get("stream") for r in upstream.requests[before:])
    else:
        output = (await Runner.run(agent, ASK, run_config=NO_TRACING)).final_output
    await client.close()
    assert output == 'The tool says: {"city": "Paris", "temp_c": 12}'
    calling, answering = upstream.requests[before:]
    assert calling["model"] == "worker-model"
    assert calling["tools"][0]["function"]["name"] == "weather_tool"
    assert (calling["tool_choice"], calling["temperature"]) == ("required", 0.2)
    # The SDK resets tool_choice once the tool ran, so the model may answer.
    assert "tool_choice" not in answering
    assert answering["messages"][-1]["role"] == "tool"


async def test_agents_sdk_image_input_is_a_400_naming_it_when_no_tier_reads_images(
    proxy: str,
) -> None:
    client = openai.AsyncOpenAI(base_url=proxy, api_key=KEY, max_retries=0)
    agent = Agent(
        name="looker", model=OpenAIChatCompletionsModel(model="paxis/auto", openai_client=client)
    )
    image: Any = [  # Any: the SDK's input items
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ],
        }
    ]
    with pytest.raises(openai.BadRequestError, match="no tier of this route reads images") as err:
        await Runner.run(agent, image, run_config=NO_TRACING)
    await client.close()
    assert err.value.code == "image_not_supported"


async def test_agents_sdk_names_the_route_by_its_dash_alias_and_gets_structured_output(
    upstream: FakeUpstream, proxy: str
) -> None:
    client = openai.AsyncOpenAI(base_url=proxy, api_key=KEY, max_retries=0)
    provider = OpenAIProvider(openai_client=client, use_responses=False)
    agent = Agent(name="weather", instructions="Report.", output_type=Weather, model="paxis-auto")
    result = await Runner.run(
        agent, ASK, run_config=RunConfig(model_provider=provider, tracing_disabled=True)
    )
    await client.close()
    assert result.final_output == Weather(city="Paris", temp_c=12)
    assert upstream.requests[-1]["response_format"]["type"] == "json_schema"
