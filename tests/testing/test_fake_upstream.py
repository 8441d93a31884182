"""The fault-injecting upstream, exercised over real sockets with httpx and the openai SDK."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from paxis_router.testing.upstream import FAULTS, FakeUpstream, FakeUpstreamProcess, main

BODY: dict[str, object] = {
    "model": "fake-model",
    "messages": [{"role": "user", "content": "six times seven"}],
}


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="forty two", model="fake-model") as upstream:
        yield upstream


def _post(
    up: FakeUpstream, body: dict[str, object] = BODY, timeout_s: float = 5.0
) -> httpx.Response:
    return httpx.post(f"{up.base_url}/chat/completions", json=body, timeout=timeout_s)


def test_happy_path_json_has_usage_finish_reason_and_records_the_request(up: FakeUpstream) -> None:
    response = _post(up)
    data = response.json()
    assert response.status_code == 200
    assert data["choices"][0]["message"]["content"] == "forty two"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["logprobs"] is None
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert up.requests == [BODY]


def test_models_endpoint_lists_the_model(up: FakeUpstream) -> None:
    response = httpx.get(f"{up.base_url}/models")
    assert [m["id"] for m in response.json()["data"]] == ["fake-model"]


def test_unknown_path_is_a_404_json_error(up: FakeUpstream) -> None:
    response = httpx.get(f"{up.base_url}/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_answer_may_be_a_function_of_the_request() -> None:
    def echo(request: dict[str, object]) -> str:
        messages = request["messages"]
        assert isinstance(messages, list)
        return str(messages[-1]["content"]).upper()

    with FakeUpstream(answer=echo) as up:
        assert _post(up).json()["choices"][0]["message"]["content"] == "SIX TIMES SEVEN"


def test_openai_sdk_reads_logprobs_and_usage(up: FakeUpstream) -> None:
    with openai.OpenAI(base_url=up.base_url, api_key="test", max_retries=0) as client:
        out = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "q"}],
            logprobs=True,
        )
    assert out.choices[0].message.content == "forty two"
    assert out.choices[0].logprobs is not None
    content = out.choices[0].logprobs.content or []
    assert [(t.token, t.logprob, t.top_logprobs) for t in content] == [
        ("forty", -0.05, []),
        (" two", -0.05, []),
    ]
    assert out.usage is not None and out.usage.completion_tokens == 2


def test_openai_sdk_streams_chunks_until_done(up: FakeUpstream) -> None:
    with openai.OpenAI(base_url=up.base_url, api_key="test", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "q"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text == "forty two"
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 3


def test_raw_stream_ends_with_done(up: FakeUpstream) -> None:
    with httpx.stream(
        "POST", f"{up.base_url}/chat/completions", json={**BODY, "stream": True}
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert response.headers["content-type"] == "text/event-stream"


def test_keep_alive_reuses_one_connection(up: FakeUpstream) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            client.post(f"{up.base_url}/chat/completions", json=BODY)
    assert up.connections == 1
    assert len(up.requests) == 3


def test_injected_faults_apply_once_each_then_mode(up: FakeUpstream) -> None:
    up.inject("500", "503")
    up.mode = "401"
    assert [_post(up).status_code for _ in range(4)] == [500, 503, 401, 401]


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("401", 401, "invalid_api_key"),
        ("403", 403, "permission_denied"),
        ("404", 404, "model_not_found"),
        ("400_context", 400, "context_length_exceeded"),
        ("500", 500, "internal_error"),
        ("503", 503, "overloaded"),
    ],
)
def test_error_statuses_carry_openai_error_bodies(
    up: FakeUpstream, fault: str, status: int, code: str
) -> None:
    up.inject(fault)
    response = _post(up)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_429_carries_retry_after() -> None:
    with FakeUpstream(retry_after_s=7) as up:
        up.inject("429")
        response = _post(up)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("fault", "field", "expected"),
    [
        ("empty_content", "content", ""),
        ("length", "finish_reason", "length"),
        ("no_usage", "usage", None),
    ],
)
def test_bad_output_faults(up: FakeUpstream, fault: str, field: str, expected: object) -> None:
    up.inject(fault)
    data = _post(up).json()
    choice = data["choices"][0]
    values = {
        "content": choice["message"]["content"],
        "finish_reason": choice["finish_reason"],
        "usage": data.get("usage"),
    }
    assert values[field] == expected


def test_malformed_json_is_truncated(up: FakeUpstream) -> None:
    up.inject("malformed_json")
    response = _post(up)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_non_utf8_content_does_not_decode(up: FakeUpstream) -> None:
    up.inject("non_utf8")
    response = _post(up)
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")


def test_stall_times_out_the_client(up: FakeUpstream) -> None:
    up.inject("stall")
    with pytest.raises(httpx.ReadTimeout):
        _post(up, timeout_s=0.2)
    assert _post(up).status_code == 200  # the next request is served normally


def test_stall_after_first_chunk_streams_one_event_then_stalls(up: FakeUpstream) -> None:
    up.inject("stall_after_first_chunk")
    received: list[str] = []
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST",
            f"{up.base_url}/chat/completions",
            json={**BODY, "stream": True},
            timeout=httpx.Timeout(5.0, read=0.3),
        ) as response,
    ):
        received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 1
    assert json.loads(received[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == (
        "assistant"
    )


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_drop_and_reset_close_without_a_response(up: FakeUpstream, fault: str) -> None:
    up.inject(fault)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _post(up)
    assert len(up.requests) == 1


def test_slow_trickle_arrives_whole_in_many_pieces() -> None:
    with FakeUpstream(answer="a b c d", trickle_bytes=32, trickle_delay_s=0.001) as up:
        up.inject("slow_trickle")
        with httpx.stream("POST", f"{up.base_url}/chat/completions", json=BODY) as response:
            pieces = list(response.iter_raw())
    body = json.loads(b"".join(pieces))
    assert body["choices"][0]["message"]["content"] == "a b c d"
    assert len(pieces) > 1


def test_kill_in_process_aborts_and_stops_listening(up: FakeUpstream) -> None:
    up.inject("kill")
    with pytest.raises(httpx.RemoteProtocolError):
        _post(up)
    assert up.killed
    with pytest.raises(httpx.ConnectError):
        _post(up)


async def test_stop_closes_a_stalled_connection() -> None:
    up = FakeUpstream(mode="stall").start()
    async with httpx.AsyncClient(timeout=10) as client:
        pending = asyncio.ensure_future(client.post(f"{up.base_url}/chat/completions", json=BODY))
        assert await asyncio.to_thread(up.wait_for_requests, 1)
        up.stop()
        with pytest.raises(httpx.RemoteProtocolError):
            await pending


def test_stop_leaves_no_thread_behind() -> None:
    before = threading.active_count()
    with FakeUpstream() as up:
        assert threading.active_count() == before + 1
        _post(up)
    assert threading.active_count() == before


def test_unknown_fault_is_rejected_with_the_known_list(up: FakeUpstream) -> None:
    with pytest.raises(ValueError, match=r"unknown fault mode .explode.*stall"):
        up.inject("explode")
    with pytest.raises(ValueError, match="unknown fault mode"):
        up.mode = "explode"


def test_port_in_use_raises_oserror(up: FakeUpstream) -> None:
    with pytest.raises(OSError):
        FakeUpstream(port=up.port).start()


def test_port_before_start_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="context manager"):
        _ = FakeUpstream().base_url


def test_faults_constant_lists_every_issue_mode() -> None:
    issue_modes = {"stall", "stall_after_first_chunk", "drop", "429", "500", "503", "401"}
    issue_modes |= {"403", "404", "malformed_json", "slow_trickle", "kill"}
    assert issue_modes <= FAULTS


def test_subprocess_kill_dies_mid_response() -> None:
    with FakeUpstreamProcess(answer="hello there") as up:
        ok = httpx.post(f"{up.base_url}/chat/completions", json=BODY, timeout=5)
        up.inject("kill")
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{up.base_url}/chat/completions", json=BODY, timeout=5)
        status = up.wait(timeout_s=10)
    assert ok.json()["choices"][0]["message"]["content"] == "hello there"
    assert status == -9


def test_subprocess_control_endpoints_steer_the_child() -> None:
    with FakeUpstreamProcess(inject=["503"]) as up:
        first = httpx.post(f"{up.base_url}/chat/completions", json=BODY, timeout=5)
        up.set_mode("404")
        second = httpx.post(f"{up.base_url}/chat/completions", json=BODY, timeout=5)
        received = up.requests
        assert up.poll() is None
    assert (first.status_code, second.status_code) == (503, 404)
    assert received == [BODY, BODY]


def test_main_rejects_unknown_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--mode", "explode"])
    assert "invalid choice" in capsys.readouterr().err


def test_loopback_only_by_default(up: FakeUpstream) -> None:
    with socket.create_connection(("127.0.0.1", up.port), timeout=5) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
    assert up.base_url.startswith("http://127.0.0.1:")


# --- tool calls, request checks, endless and huge bodies ---------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
SCRIPTED: list[dict[str, object]] = [
    {"name": "get_weather", "arguments": {"city": "Paris"}},
    {"name": "get_weather", "arguments": '{"city": "Oslo"}', "id": "call_fixed"},
]


def test_the_openai_sdk_reads_scripted_tool_calls() -> None:
    with (
        FakeUpstream(tool_calls=SCRIPTED) as upstream,
        openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as client,
    ):
        out = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_1_0", "get_weather", '{"city":"Paris"}'),
        ("call_fixed", "get_weather", '{"city": "Oslo"}'),
    ]


@pytest.mark.parametrize("interleave", [False, True])
def test_streamed_tool_calls_are_openai_deltas_the_sdk_can_fold(interleave: bool) -> None:
    with (
        FakeUpstream(
            tool_calls=SCRIPTED, tool_call_chunk_chars=3, interleave_tool_calls=interleave
        ) as upstream,
        openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as client,
        client.chat.completions.stream(
            model="fake-model",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        ) as stream,
    ):
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in calls] == [
        ("call_1_0", '{"city":"Paris"}'),
        ("call_fixed", '{"city": "Oslo"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"messages": []}, "messages must be a non-empty array"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0]: role must be one of"),
        ({"messages": [{"role": "user"}]}, "messages[0]: content is required"),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "4"}]},
            "messages[1]: a 'tool' message needs a tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0]: a content part must be text or image_url",
        ),
        (
            {"messages": [{"role": "user", "tool_calls": [{"id": "a"}], "content": "x"}]},
            "messages[0]: only an assistant message carries tool_calls",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}], "tool_choice": "auto"},
            "tool_choice is only allowed when tools are specified",
        ),
        (
            {
                "messages": [{"role": "user", "content": "q"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice names 'nope', which is not among the tools",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]},
            "tools[0]: function.name is required",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}], "parallel_tool_calls": False},
            "parallel_tool_calls is only allowed when tools are specified",
        ),
    ],
)
def test_requests_openai_would_reject_get_its_400(
    up: FakeUpstream, body: dict[str, object], problem: str
) -> None:
    response = _post(up, {"model": "fake-model", **body})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(problem)
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_huge_error_is_as_big_as_asked() -> None:
    with FakeUpstream(huge_error_bytes=100_000) as upstream:
        upstream.inject("huge_error")
        response = _post(upstream)
    assert response.status_code == 500
    assert len(response.json()["error"]["message"]) == 100_000


def test_an_endless_body_goes_on_until_the_client_hangs_up(up: FakeUpstream) -> None:
    up.inject("endless_body")
    with httpx.stream("POST", f"{up.base_url}/chat/completions", json=BODY, timeout=5) as r:
        read = 0
        for piece in r.iter_bytes():
            read += len(piece)
            if read > 3 << 20:
                break
    assert r.status_code == 200
    assert up.wait_for_open_connections(0)
    assert up.endless_bytes_sent >= 3 << 20


def test_a_connection_made_just_before_stop_is_closed_with_the_server() -> None:
    # The client is done before stop(); the server accepts it in the loop iteration that runs
    # the shutdown: its transport must be made (and aborted) before the server closes, or it
    # is left half-built and collected later as an unclosed socket (an error in this suite).
    for _ in range(20):
        upstream = FakeUpstream().start()
        with socket.create_connection(("127.0.0.1", upstream.port), timeout=5):
            pass
        upstream.stop()
        assert upstream.wait_for_open_connections(0)
    gc.collect()
