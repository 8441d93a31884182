"""OpenAICompatWorker.stream() and the lean HTTP/1.1 pool, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import doctest
import json
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from paxis_router import Router, SQLiteLedger
from paxis_router.errors import WorkerError, WorkerTimeout, WorkerUnavailable
from paxis_router.proxy import ProxySettings, create_app
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.types import ChatRequest, Completion
from paxis_router.workers import openai_compat as openai_compat_module
from paxis_router.workers.openai_compat import OpenAICompatWorker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    Closing = Callable[[OpenAICompatWorker], OpenAICompatWorker]  # the closing fixture


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="The answer is 42", model="qwen-ft", token_logprob=-0.5) as up:
        yield up


@pytest.fixture
async def worker(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatWorker]:
    w = OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=2.0)
    yield w
    await w.aclose()


async def _collect(
    worker: OpenAICompatWorker, request: ChatRequest
) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    final: list[Completion] = []
    async for item in worker.stream(request, None):
        if isinstance(item, Completion):
            final.append(item)
        else:
            assert not final, "a delta came after the final Completion"
            deltas.append(item)
    assert len(final) == 1
    return deltas, final[0]


async def test_stream_yields_the_tokens_then_the_completion(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    deltas, final = await _collect(worker, ChatRequest.from_text("6*7?"))
    assert deltas == ["The", " answer", " is", " 42"]
    assert final.content == "The answer is 42"
    assert final.model == "qwen-ft"
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.completion_tokens == 4
    assert final.token_logprobs is None
    sent = upstream.requests[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_stream_collects_logprobs_and_length(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("length")
    _, final = await _collect(
        worker, ChatRequest.from_text("6*7?").model_copy(update={"logprobs": True})
    )
    assert final.token_logprobs == (-0.5, -0.5, -0.5, -0.5)
    assert final.finish_reason == "length"


async def test_stream_status_error_carries_retry_after(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("429")
    with pytest.raises(WorkerUnavailable, match="HTTP 429") as info:
        await _collect(worker, ChatRequest.from_text("6*7?"))
    assert info.value.transient is True
    assert info.value.retry_after_s == 1.0
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("fault", "what"), [("malformed_json", "not JSON"), ("non_utf8", "not valid UTF-8")]
)
async def test_stream_broken_event_is_a_worker_error(
    upstream: FakeUpstream, worker: OpenAICompatWorker, fault: str, what: str
) -> None:
    upstream.inject(fault)
    with pytest.raises(WorkerError, match=what) as info:
        await _collect(worker, ChatRequest.from_text("6*7?"))
    assert type(info.value) is WorkerError


async def test_stream_cut_mid_body_is_transient(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("kill")
    with pytest.raises(WorkerUnavailable, match="cannot reach") as info:
        await _collect(worker, ChatRequest.from_text("6*7?"))
    assert info.value.transient is True


async def test_stream_stalled_after_first_chunk_times_out(
    upstream: FakeUpstream, closing: Closing
) -> None:
    w = closing(OpenAICompatWorker("local:q", "qwen-ft", upstream.base_url, timeout_s=0.3))
    upstream.inject("stall_after_first_chunk")
    with pytest.raises(WorkerTimeout, match=r"within 0\.3 s"):
        await _collect(w, ChatRequest.from_text("6*7?"))
    await w.aclose()


async def test_keep_alive_reuses_one_connection(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    for _ in range(3):
        await worker.complete(ChatRequest.from_text("6*7?"), None)
    await _collect(worker, ChatRequest.from_text("6*7?"))
    await worker.complete(ChatRequest.from_text("6*7?"), None)
    assert upstream.connections == 1
    assert len(upstream.requests) == 5


async def test_concurrent_calls_stay_within_max_connections(
    upstream: FakeUpstream, closing: Closing
) -> None:
    w = closing(OpenAICompatWorker("local:q", "qwen-ft", upstream.base_url, max_connections=2))
    results = await asyncio.gather(
        *(w.complete(ChatRequest.from_text(f"q{i}"), None) for i in range(12))
    )
    await w.aclose()
    assert [r.content for r in results] == ["The answer is 42"] * 12
    assert upstream.connections <= 2


async def test_a_reused_connection_closed_unanswered_is_retried_once_on_a_new_one(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    await worker.complete(ChatRequest.from_text("6*7?"), None)
    upstream.inject("drop")  # as a keep-alive timeout would: closed, nothing sent
    again = await worker.complete(ChatRequest.from_text("6*7?"), None)
    upstream.inject("drop", "drop")  # the fresh connection is dropped too: no second retry
    with pytest.raises(WorkerUnavailable, match="closed the connection without a response"):
        await worker.complete(ChatRequest.from_text("6*7?"), None)
    assert again.content == "The answer is 42"
    assert len(upstream.requests) == 5
    assert upstream.connections == 3


async def test_waiting_for_a_free_connection_counts_in_the_timeout(
    upstream: FakeUpstream,
    closing: Closing,
) -> None:
    # A stream holds the only connection until it is read to its end or closed: a second call
    # waits for it and times out within its own 0.3 s, never reaching the server.
    w = closing(
        OpenAICompatWorker(
            "local:q", "qwen-ft", upstream.base_url, timeout_s=0.3, max_connections=1
        )
    )
    holder = w.stream(ChatRequest.from_text("a"), None)
    assert await anext(holder) == "The"
    with pytest.raises(WorkerTimeout, match=r"within 0\.3 s"):
        await w.complete(ChatRequest.from_text("b"), None)
    await holder.aclose()
    assert len(upstream.requests) == 1  # the second never got a connection
    again = await w.complete(ChatRequest.from_text("c"), None)  # the slot came back
    await w.aclose()
    assert again.content == "The answer is 42"


def test_docstring_examples() -> None:
    result = doctest.testmod(openai_compat_module)
    assert result.attempted > 0
    assert result.failed == 0


def test_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections must be >= 1"):
        OpenAICompatWorker("local:q", "m", "http://127.0.0.1:1/v1", max_connections=0)


# --- servers the fake upstream cannot imitate -------------------------------------------------


async def _serve_once(
    answer: bytes,
) -> tuple[asyncio.Server, Callable[[], Awaitable[None]]]:
    """A server on 127.0.0.1 that answers every request with ``answer`` and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return server, stop


_OK_JSON = json.dumps(
    {"model": "m", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
).encode()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + _OK_JSON,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + _OK_JSON,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(_OK_JSON):x}\r\n".encode()
        + _OK_JSON
        + b"\r\n0\r\n\r\n",
    ],
    ids=["http10-until-close", "connection-close", "chunked"],
)
async def test_bodies_framed_every_http11_way(answer: bytes, closing: Closing) -> None:
    server, stop = await _serve_once(answer)
    port = server.sockets[0].getsockname()[1]
    w = closing(OpenAICompatWorker("local:q", "m", f"http://127.0.0.1:{port}/v1", timeout_s=2.0))
    first = await w.complete(ChatRequest.from_text("hi"), None)
    second = await w.complete(ChatRequest.from_text("hi"), None)  # a fresh connection
    await w.aclose()
    await stop()
    assert (first.content, second.content, first.usage) == ("hi", "hi", None)


async def test_not_http_is_transient_unavailable(closing: Closing) -> None:
    server, stop = await _serve_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    port = server.sockets[0].getsockname()[1]
    w = closing(OpenAICompatWorker("local:q", "m", f"http://127.0.0.1:{port}/v1", timeout_s=2.0))
    with pytest.raises(WorkerUnavailable, match=r"not an HTTP/1\.x response") as info:
        await w.complete(ChatRequest.from_text("hi"), None)
    await w.aclose()
    await stop()
    assert info.value.transient is True


# --- the httpx path (a caller's http_client) --------------------------------------------------


def _sse(*events: dict[str, object]) -> bytes:
    lines = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    return b": keep-alive comment\n\n" + b"".join(lines) + b"data: [DONE]\n\n"


async def test_stream_over_a_callers_http_client(closing: Closing) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "text/event-stream"
        assert json.loads(request.content)["stream"] is True
        body = _sse(
            {"model": "m1", "choices": [{"delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"delta": {"content": "4"}}]},
            {"choices": [{"delta": {"content": "2"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    w = closing(OpenAICompatWorker("local:m", "m", "https://vllm.test/v1", http_client=client))
    deltas, final = await _collect(w, ChatRequest.from_text("6*7?"))
    await w.aclose()
    assert deltas == ["4", "2"]
    assert (final.content, final.model, final.finish_reason) == ("42", "m1", "stop")
    assert final.usage is not None
    assert final.usage.total_tokens == 5


async def test_stream_error_event_and_status_over_a_callers_http_client(closing: Closing) -> None:
    replies = [
        httpx.Response(503, json={"error": {"message": "overloaded"}}),
        httpx.Response(200, content=_sse({"error": {"message": "engine died"}})),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return replies.pop(0)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    w = closing(OpenAICompatWorker("local:m", "m", "https://vllm.test/v1", http_client=client))
    with pytest.raises(WorkerUnavailable, match=r"HTTP 503 .*overloaded"):
        await _collect(w, ChatRequest.from_text("6*7?"))
    with pytest.raises(WorkerError, match="ended the stream with an error: engine died"):
        await _collect(w, ChatRequest.from_text("6*7?"))
    await w.aclose()


async def test_a_server_that_does_not_stream_answers_in_one_piece(closing: Closing) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "model": "m",
            "choices": [{"message": {"content": "42"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
        return httpx.Response(200, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    w = closing(OpenAICompatWorker("local:m", "m", "https://vllm.test/v1", http_client=client))
    deltas, final = await _collect(w, ChatRequest.from_text("6*7?"))
    await w.aclose()
    assert deltas == ["42"]
    assert (final.content, final.finish_reason) == ("42", "stop")
    assert final.usage is not None
    assert final.usage.total_tokens == 4


# --- through the proxy: passthrough relays the upstream's own tokens --------------------------


async def test_proxy_passthrough_relays_the_upstreams_tokens(
    upstream: FakeUpstream,
    tmp_path: Path,
    closing: Closing,
) -> None:
    local = closing(OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=2.0))
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    app = create_app(
        Router(tiers=[local], ledger=ledger),
        ProxySettings(anonymous_team="dev", passthrough_stream=True),
    )
    body = {"model": "paxis/auto", "stream": True, "messages": [{"role": "user", "content": "?"}]}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://proxy"
    ) as http:
        response = await http.post("/v1/chat/completions", json=body)
    await local.aclose()
    rows = ledger.rows()
    ledger.close()
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    pieces = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    assert response.headers["x-paxis-passthrough"] == "true"
    assert pieces[:4] == ["The", " answer", " is", " 42"]
    assert response.text.endswith("data: [DONE]\n\n")
    assert [(r.tier, r.completion_tokens) for r in rows] == [("local:qwen", 4)]
