"""Tools, tool results and content parts at the proxy's edge, in-process (the openai client over
an ASGI transport): what reaches the router, what is a 400 naming the place, and a passthrough
stream whose tier writes text and then calls a tool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from paxis_router import Router, SQLiteLedger
from paxis_router.proxy import ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing import FakeWorker, FunctionWorker
from paxis_router.types import ChatRequest, Completion, FunctionCall, ToolCall

KEY = "pxs-tools-edge-key"
SETTINGS = ProxySettings(keys=(TeamKey(team="t", key_sha256=hash_key(KEY), passthrough=True),))
AUTH = {"authorization": f"Bearer {KEY}"}
TOOL: dict[str, Any] = {  # Any: a JSON tool
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        },
    },
}
CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "add", "arguments": '{"a":1}'},
}


@pytest.fixture
async def seen() -> AsyncIterator[list[ChatRequest]]:
    yield []


def _app(worker: object) -> Any:  # Any: the Starlette app
    return create_app(Router(tiers=[worker]), SETTINGS)  # type: ignore[list-item]


async def _post(app: Any, body: dict[str, Any], **headers: str) -> httpx2.Response:
    # Any: the Starlette app and a JSON body
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        return await http.post("/v1/chat/completions", json=body, headers={**AUTH, **headers})


async def test_tool_calls_tool_results_and_parts_reach_the_router(
    seen: list[ChatRequest],
) -> None:
    def record(request: ChatRequest, skill: object) -> str:
        seen.append(request)
        return "3"

    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Use the tools."}]},
        {"role": "user", "content": "1+2?"},
        # As the openai SDK echoes its own message object back: null extras, parsed arguments.
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "audio": None,
            "function_call": None,
            "annotations": [],
            "tool_calls": [{**CALL, "function": {**CALL["function"], "parsed_arguments": None}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    response = await _post(
        _app(FunctionWorker(record)),
        {"model": "paxis/auto", "messages": messages, "tools": [TOOL], "tool_choice": "none"},
    )
    assert response.status_code == 200, response.text
    (request,) = seen
    assert [m.role for m in request.messages] == ["developer", "user", "assistant", "tool"]
    assert request.messages[0].text == "Use the tools."
    assert request.messages[2].tool_calls == (
        ToolCall(id="call_1", function=FunctionCall(name="add", arguments='{"a":1}')),
    )
    assert request.messages[3].tool_call_id == "call_1"
    assert request.tool_names == ("add",)
    assert request.tool_choice == "none"


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        ({"tool_choice": "auto"}, "tool_choice", "only allowed when tools are specified"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls", "only allowed when tools"),
        ({"tools": {"add": 1}}, "tools", "must be an array"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0].type", "function"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "mul"}}},
            "tool_choice",
            "'mul', which is not in tools",
        ),
        ({"tools": [TOOL, TOOL]}, "tools", "must be unique"),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "must be one of"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.json_schema",
            "with a name",
        ),
        ({"metadata": {"k": 1}}, "metadata.k", "must be a string"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16 keys"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"n": True}, "n", "only n=1"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_bad_tool_and_format_parameters_are_400_naming_them(
    extra: dict[str, Any], param: str, message: str
) -> None:
    body = {"model": "paxis/auto", "messages": [{"role": "user", "content": "q"}], **extra}
    response = await _post(_app(FakeWorker(["x"])), body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert message in error["message"]


@pytest.mark.parametrize(
    ("message", "param", "text"),
    [
        ({"role": "tool", "content": "3"}, "messages[0]", "tool_call_id"),
        ({"role": "user", "content": "x", "tool_calls": [CALL]}, "messages[0]", "only assistant"),
        ({"role": "user", "content": None}, "messages[0]", "content is required"),
        ({"role": "assistant", "content": "x", "audio": {"id": "a1"}}, "messages[0].audio", ""),
        ({"role": "user", "content": "x", "mood": "happy"}, "messages[0].mood", "unrecognized"),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": 3}]},
            "messages[0].tool_calls[0]",
            "id, type and function",
        ),
        (
            {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]},
            "messages[0].content[0].type",
            "'file'",
        ),
    ],
    ids=[
        "tool-without-id",
        "user-tool-calls",
        "null-content",
        "audio",
        "unknown-key",
        "bad-call",
        "file",
    ],
)
async def test_malformed_messages_are_400_naming_the_place(
    message: dict[str, Any], param: str, text: str
) -> None:
    response = await _post(_app(FakeWorker(["x"])), {"model": "paxis/auto", "messages": [message]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert text in error["message"]


async def test_metadata_becomes_the_requests_tags(seen: list[ChatRequest]) -> None:
    def record(request: ChatRequest, skill: object) -> str:
        seen.append(request)
        return "ok"

    body = {
        "model": "paxis/auto",
        "messages": [{"role": "user", "content": "q"}],
        "metadata": {"project": "renewals", "ticket": "T-1"},
    }
    assert (await _post(_app(FunctionWorker(record)), body)).status_code == 200
    assert seen[0].tags == {"project": "renewals", "ticket": "T-1"}
    assert seen[0].team == "t"


def _text_then_call() -> FakeWorker:
    call = ToolCall(id="call_9", function=FunctionCall(name="add", arguments='{"a": 1, "b": 2}'))
    answer = Completion("Let me add that.", "fake", finish_reason="tool_calls", tool_calls=(call,))
    return FakeWorker([answer], name="local:w")


async def test_passthrough_stream_relays_text_then_the_tool_call_in_openai_shape() -> None:
    body = {
        "model": "paxis/auto",
        "messages": [{"role": "user", "content": "1+2?"}],
        "tools": [TOOL],
        "stream": True,
    }
    response = await _post(_app(_text_then_call()), body, **{"x-paxis-passthrough": "1"})
    assert response.headers["x-paxis-passthrough"] == "true"
    events = [b[6:] for b in response.text.split("\n\n") if b.startswith("data: ")]
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Let me add that."
    assert deltas[0]["role"] == "assistant"
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "add", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"a": 1, "b": 2}'
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "tool_calls"


async def test_the_openai_sdk_reads_a_text_and_tool_call_answer() -> None:
    app = _app(_text_then_call())
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        client = openai.AsyncOpenAI(
            base_url="http://paxis.test/v1", api_key=KEY, http_client=http, max_retries=0
        )
        reply = await client.chat.completions.create(
            model="paxis/auto",
            messages=[{"role": "user", "content": "1+2?"}],
            tools=[TOOL],  # type: ignore[list-item]
        )
        async with client.chat.completions.stream(
            model="paxis/auto",
            messages=[{"role": "user", "content": "1+2?"}],
            tools=[TOOL],  # type: ignore[list-item]
        ) as stream:
            final = await stream.get_final_completion()
    for choice in (reply.choices[0], final.choices[0]):
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content == "Let me add that."
        (call,) = choice.message.tool_calls or []
        assert call.type == "function"
        assert (call.id, call.function.name, call.function.arguments) == (
            "call_9",
            "add",
            '{"a": 1, "b": 2}',
        )


async def test_a_passthrough_stream_serves_the_tiers_call_unverified_and_records_the_check(
    tmp_path: Path,
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    wrong = ToolCall(id="call_7", function=FunctionCall(name="mul", arguments="{not json"))
    answer = Completion("Calling.", "fake", finish_reason="tool_calls", tool_calls=(wrong,))
    app = create_app(Router(tiers=[FakeWorker([answer], name="local:w")], ledger=ledger), SETTINGS)
    body = {
        "model": "paxis/auto",
        "messages": [{"role": "user", "content": "1+2?"}],
        "tools": [TOOL],
        "stream": True,
    }
    response = await _post(app, body, **{"x-paxis-passthrough": "1"})
    events = [b[6:] for b in response.text.split("\n\n") if b.startswith("data: ")]
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["function"]["name"] == "mul"  # served as the tier wrote it
    assert "".join(c["function"]["arguments"] for c in calls) == "{not json"
    (row,) = ledger.rows()
    assert row.decision.value == "accept"
    verdicts = {v.verifier: v.passed for v in row.verdicts}
    assert verdicts == {"proxy:client_stayed": True, "tool_calls": False}
