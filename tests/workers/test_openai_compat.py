"""OpenAICompatWorker over real HTTP (the fake upstream on 127.0.0.1) and httpx.MockTransport."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from paxis_router.errors import (
    ContextWindowExceeded,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.skills.model import Skill
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.types import ChatRequest, Message
from paxis_router.workers.openai_compat import OpenAICompatWorker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    Closing = Callable[[OpenAICompatWorker], OpenAICompatWorker]  # the closing fixture


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="The answer is 42", model="qwen-ft", token_logprob=-0.25) as up:
        yield up


@pytest.fixture
async def worker(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatWorker]:
    w = OpenAICompatWorker("local:qwen", "qwen-ft", upstream.base_url, timeout_s=2.0)
    yield w
    await w.aclose()


def _request(**kwargs: object) -> ChatRequest:
    return ChatRequest.from_text("What is 6*7?").model_copy(update=kwargs)


async def test_answer_usage_and_finish_reason(worker: OpenAICompatWorker) -> None:
    completion = await worker.complete(_request(), None)
    assert completion.content == "The answer is 42"
    assert completion.model == "qwen-ft"
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    assert completion.token_logprobs is None
    assert completion.latency_s > 0


async def test_logprobs_when_request_asks(worker: OpenAICompatWorker) -> None:
    completion = await worker.complete(_request(logprobs=True), None)
    assert completion.token_logprobs == (-0.25, -0.25, -0.25, -0.25)
    assert completion.mean_token_prob == pytest.approx(0.7788, abs=1e-4)


async def test_logprobs_when_worker_asks(upstream: FakeUpstream, closing: Closing) -> None:
    w = closing(OpenAICompatWorker("local:q", "qwen-ft", upstream.base_url, logprobs=True))
    completion = await w.complete(_request(), None)
    await w.aclose()
    assert completion.token_logprobs is not None
    assert len(completion.token_logprobs) == 4
    assert upstream.requests[-1]["logprobs"] is True


@pytest.mark.parametrize(
    ("fault", "error", "transient", "status"),
    [
        ("429", WorkerUnavailable, True, 429),
        ("500", WorkerUnavailable, True, 500),
        ("503", WorkerUnavailable, True, 503),
        ("401", WorkerUnavailable, False, 401),
        ("403", WorkerUnavailable, False, 403),
        ("404", WorkerUnavailable, False, 404),
    ],
)
async def test_http_errors_map_to_unavailable(
    upstream: FakeUpstream,
    worker: OpenAICompatWorker,
    fault: str,
    error: type[WorkerUnavailable],
    transient: bool,
    status: int,
) -> None:
    upstream.inject(fault)
    with pytest.raises(error, match=f"local:qwen: HTTP {status}") as info:
        await worker.complete(_request(), None)
    assert info.value.transient is transient
    assert info.value.status_code == status
    assert info.value.worker == "local:qwen"
    assert info.value.__cause__ is not None


async def test_429_carries_retry_after(upstream: FakeUpstream, worker: OpenAICompatWorker) -> None:
    upstream.inject("429")
    with pytest.raises(WorkerUnavailable) as info:
        await worker.complete(_request(), None)
    assert info.value.retry_after_s == 1.0


async def test_context_length_400(upstream: FakeUpstream, worker: OpenAICompatWorker) -> None:
    upstream.inject("400_context")
    with pytest.raises(ContextWindowExceeded, match="maximum context length is 8192"):
        await worker.complete(_request(), None)


@pytest.mark.parametrize("fault", ["drop", "reset"])
async def test_dropped_connection_is_transient(
    upstream: FakeUpstream, worker: OpenAICompatWorker, fault: str
) -> None:
    upstream.inject(fault)
    with pytest.raises(WorkerUnavailable, match="cannot reach") as info:
        await worker.complete(_request(), None)
    assert info.value.transient is True


async def test_stall_times_out(upstream: FakeUpstream, closing: Closing) -> None:
    w = closing(OpenAICompatWorker("local:q", "qwen-ft", upstream.base_url, timeout_s=0.3))
    upstream.inject("stall")
    with pytest.raises(WorkerTimeout, match=r"within 0\.3 s"):
        await w.complete(_request(), None)
    await w.aclose()


async def test_stall_mid_answer_fails_on_the_read_timeout_not_the_total(
    upstream: FakeUpstream,
    closing: Closing,
) -> None:
    w = closing(
        OpenAICompatWorker(
            "local:q", "qwen-ft", upstream.base_url, timeout_s=30, read_timeout_s=0.3
        )
    )
    upstream.inject("stall_after_first_chunk")  # headers and half the body, then silence
    with pytest.raises(WorkerTimeout, match=r"stopped sending for 0\.3 s .*\(read timeout\)"):
        await w.complete(_request(), None)
    upstream.inject("stall")  # nothing at all after the request: also silence
    with pytest.raises(WorkerTimeout, match=r"\(read timeout\)"):
        await w.complete(_request(), None)
    await w.aclose()


async def test_slow_but_steady_answer_outlives_the_read_timeout(closing: Closing) -> None:
    # 20 writes 0.05 s apart: the whole answer takes ~1 s, no silence reaches 0.5 s.
    answer = "x" * 300
    with FakeUpstream(answer=answer, trickle_bytes=30, trickle_delay_s=0.05) as up:
        up.inject("slow_trickle")
        w = closing(
            OpenAICompatWorker("local:q", "m", up.base_url, timeout_s=30, read_timeout_s=0.5)
        )
        completion = await w.complete(_request(), None)
        await w.aclose()
    assert completion.content == answer


async def test_streams_fail_on_the_read_timeout_between_pieces(
    upstream: FakeUpstream, closing: Closing
) -> None:
    w = closing(
        OpenAICompatWorker(
            "local:q", "qwen-ft", upstream.base_url, timeout_s=30, read_timeout_s=0.3
        )
    )
    upstream.inject("stall_after_first_chunk")
    with pytest.raises(WorkerTimeout, match=r"\(read timeout\)"):
        async for _ in w.stream(_request(), None):
            pass
    await w.aclose()


def test_read_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="read_timeout_s must be > 0"):
        OpenAICompatWorker("local:w", "m", "http://127.0.0.1:1/v1", read_timeout_s=0)


async def test_connection_refused_is_not_transient(closing: Closing) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    w = closing(OpenAICompatWorker("local:q", "m", f"http://127.0.0.1:{port}/v1", timeout_s=2.0))
    with pytest.raises(WorkerUnavailable, match="is the server running") as info:
        await w.complete(_request(), None)
    await w.aclose()
    assert info.value.transient is False


@pytest.mark.parametrize(
    ("fault", "what"), [("malformed_json", "not JSON"), ("non_utf8", "not valid UTF-8")]
)
async def test_broken_body_is_a_worker_error(
    upstream: FakeUpstream, worker: OpenAICompatWorker, fault: str, what: str
) -> None:
    upstream.inject(fault)
    with pytest.raises(WorkerError, match=f"local:qwen: .*{what}") as info:
        await worker.complete(_request(), None)
    assert type(info.value) is WorkerError


async def test_killed_mid_response_is_transient(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("kill")
    with pytest.raises(WorkerUnavailable, match="cannot reach") as info:
        await worker.complete(_request(), None)
    assert info.value.transient is True


async def test_bad_output_is_a_value_not_an_error(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("empty_content", "no_usage", "length")
    empty = await worker.complete(_request(), None)
    no_usage = await worker.complete(_request(), None)
    truncated = await worker.complete(_request(), None)
    assert empty.content == ""
    assert no_usage.usage is None
    assert no_usage.content == "The answer is 42"
    assert truncated.finish_reason == "length"


# --- MockTransport: the handler asserts on the request JSON -----------------------------------


def _mock_worker(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: object
) -> OpenAICompatWorker:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatWorker(
        "local:mock",
        "adapter-x",
        "http://vllm.test/v1",
        http_client=client,
        **kwargs,  # type: ignore[arg-type]
    )


def _ok(content: str = "ok") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "adapter-x",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
        },
    )


async def test_request_body_carries_the_request() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer EMPTY"
        seen.append(json.loads(request.content))
        return _ok("4")

    w = _mock_worker(handler, extra_body={"top_k": 5})
    request = ChatRequest(
        messages=(Message(role="system", content="be brief"), Message(role="user", content="2+2")),
        max_tokens=16,
        temperature=0.0,
        response_format={"type": "json_object"},
    )
    completion = await w.complete(request, None)
    await w.aclose()
    assert completion.content == "4"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 8
    assert seen == [
        {
            "model": "adapter-x",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "2+2"},
            ],
            "max_tokens": 16,
            "temperature": 0.0,
            "response_format": {"type": "json_object"},
            "top_k": 5,
        }
    ]


async def test_api_key_and_logprobs_flag_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok()

    w = _mock_worker(handler, api_key="sk-local", logprobs=True)
    await w.complete(_request(), None)
    await w.aclose()
    assert seen[0].headers["authorization"] == "Bearer sk-local"
    assert json.loads(seen[0].content)["logprobs"] is True


async def test_no_retries_by_the_sdk() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"error": {"message": "overloaded"}})

    w = _mock_worker(handler)
    with pytest.raises(WorkerUnavailable, match="overloaded"):
        await w.complete(_request(), None)
    await w.aclose()
    assert calls == [1]


async def test_other_4xx_is_a_plain_worker_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": {"message": "temperature must be <= 2"}})

    w = _mock_worker(handler)
    with pytest.raises(WorkerError, match=r"HTTP 422 .*temperature must be") as info:
        await w.complete(_request(), None)
    await w.aclose()
    assert type(info.value) is WorkerError


async def test_plain_text_body_is_a_worker_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"})

    w = _mock_worker(handler)
    with pytest.raises(WorkerError, match=r"local:mock: .*not JSON"):
        await w.complete(_request(), None)
    await w.aclose()


async def test_retry_after_http_date() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"error": {"message": "slow down"}},
            headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
        )

    w = _mock_worker(handler)
    with pytest.raises(WorkerUnavailable) as info:
        await w.complete(_request(), None)
    await w.aclose()
    assert info.value.retry_after_s == 0.0


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        OpenAICompatWorker("local:q", "m", "http://127.0.0.1:1/v1", timeout_s=0)


async def test_skill_adapter_is_requested_as_the_model() -> None:
    models: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        models.append(json.loads(request.content)["model"])
        return _ok()

    skill = Skill(
        id="acme/invoices",
        name="invoices",
        description="d",
        metadata={"paxis-adapter": "qwen-invoices-lora"},
    )
    plain = Skill(id="acme/other", name="other", description="d")
    w = _mock_worker(handler)
    await w.complete(_request(), skill)
    await w.complete(_request(), plain)
    await w.complete(_request(), None)
    off = _mock_worker(handler, skill_adapters=False)
    await off.complete(_request(), skill)
    await w.aclose()
    await off.aclose()
    assert models == ["qwen-invoices-lora", "adapter-x", "adapter-x", "adapter-x"]


async def test_low_logprob_confidence_escalates_through_the_router(
    tmp_path: Path, closing: Closing
) -> None:
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.router import Router
    from paxis_router.testing import FakeWorker

    with FakeUpstream(answer="maybe 41", token_logprob=-1.0) as up:  # mean prob 0.37
        local = closing(OpenAICompatWorker("local:qwen", "qwen-ft", up.base_url, logprobs=True))
        ledger = SQLiteLedger(tmp_path / "l.db")
        router = Router(
            tiers=[local, FakeWorker(["42"], name="frontier:f")], policy=0.7, ledger=ledger
        )
        result = await router.route(ChatRequest.from_text("6*7?"))
        await local.aclose()
    rows = ledger.rows()
    ledger.close()
    assert (result.content, result.tier) == ("42", "frontier:f")
    assert rows[0].reason == "escalate: confidence 0.368 too low"
    assert rows[0].completion_tokens == 2


async def test_connect_timeout_is_a_worker_timeout_over_a_real_socket(closing: Closing) -> None:
    """A listener whose accept queue is full drops new SYNs, so a connect hangs: the connect
    timeout ends it long before the call's total timeout."""
    import socket

    from paxis_router.errors import WorkerTimeout as Timeout
    from paxis_router.types import ChatRequest as Request

    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):  # fill the accept queue; nobody ever accepts
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        worker = closing(
            OpenAICompatWorker(
                "local:w", "m", f"http://127.0.0.1:{port}/v1", timeout_s=30, connect_timeout_s=0.3
            )
        )
        with pytest.raises(Timeout, match=r"within 0\.3 s \(connect timeout\)"):
            await worker.complete(Request.from_text("hi"), None)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="connect_timeout_s must be > 0"):
        OpenAICompatWorker("local:w", "m", "http://127.0.0.1:1/v1", connect_timeout_s=0)
