"""Response bodies are capped: an endless 200 or a huge error body fails the call, bounded.

The fake upstream writes without end (``endless_body``) or a 20 MB error (``huge_error``) over a
real socket; the client stops reading at its cap. What the upstream got into the socket before
the client hung up bounds what the client could have read (the cap plus the kernel's buffers).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import httpx
import pytest

from paxis_router.errors import WorkerError, WorkerUnavailable
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.types import ChatRequest, Completion
from paxis_router.workers.openai_compat import MAX_ERROR_BYTES, OpenAICompatWorker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    Closing = Callable[[OpenAICompatWorker], OpenAICompatWorker]  # the closing fixture

CAP = 1 << 20  # 1 MiB
BUFFERS = 64 << 20  # far above loopback socket buffers, far below "unbounded"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="fine") as up:
        yield up


@pytest.fixture
async def worker(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatWorker]:
    w = OpenAICompatWorker("local:w", "m", upstream.base_url, timeout_s=30, max_response_bytes=CAP)
    yield w
    await w.aclose()


async def _drain(worker: OpenAICompatWorker) -> Completion:
    final = None
    async for item in worker.stream(ChatRequest.from_text("q"), None):
        if isinstance(item, Completion):
            final = item
    assert final is not None
    return final


async def test_an_endless_answer_fails_at_the_cap(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("endless_body")
    with pytest.raises(WorkerError, match=r"local:w: .*body over 1048576 bytes") as info:
        await worker.complete(ChatRequest.from_text("q"), None)
    assert type(info.value) is WorkerError  # not transient: retrying would read it again
    assert await asyncio.to_thread(upstream.wait_for_open_connections, 0)  # client hung up
    assert CAP < upstream.endless_bytes_sent < CAP + BUFFERS
    assert (await worker.complete(ChatRequest.from_text("q"), None)).content == "fine"


async def test_an_endless_stream_fails_at_the_cap(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    upstream.inject("endless_body")
    with pytest.raises(WorkerError, match=r"body over 1048576 bytes \(max_response_bytes\)"):
        await _drain(worker)
    assert await asyncio.to_thread(upstream.wait_for_open_connections, 0)
    assert CAP < upstream.endless_bytes_sent < CAP + BUFFERS
    assert (await _drain(worker)).content == "fine"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_huge_error_body_keeps_only_its_head(
    upstream: FakeUpstream, worker: OpenAICompatWorker, stream: bool
) -> None:
    upstream.inject("huge_error")
    with pytest.raises(WorkerUnavailable, match=r"HTTP 500 from .*: \{\"error\"") as info:
        if stream:
            await _drain(worker)
        else:
            await worker.complete(ChatRequest.from_text("q"), None)
    cause = info.value.__cause__
    assert cause is not None
    assert len(getattr(cause, "body", b"")) == MAX_ERROR_BYTES
    assert len(str(info.value)) < 1000
    assert info.value.transient is True


async def test_a_declared_length_over_the_cap_fails_before_reading(closing: Closing) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * 5000 + b"}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    w = closing(
        OpenAICompatWorker(
            "local:m", "m", "https://vllm.test/v1", http_client=client, max_response_bytes=4096
        )
    )
    with pytest.raises(WorkerError, match="over 4096 bytes"):
        await w.complete(ChatRequest.from_text("q"), None)
    await w.aclose()


async def test_a_callers_client_keeps_only_the_head_of_an_error_body(closing: Closing) -> None:
    body = json.dumps({"error": {"message": "bad " * 10_000}}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    w = closing(OpenAICompatWorker("local:m", "m", "https://vllm.test/v1", http_client=client))
    with pytest.raises(
        WorkerError, match=r"HTTP 422 .*\{\"error\": \{\"message\": \"bad bad"
    ) as info:
        await w.complete(ChatRequest.from_text("q"), None)
    await w.aclose()
    assert len(getattr(info.value.__cause__, "body", b"")) == MAX_ERROR_BYTES


@pytest.mark.parametrize("field", ["max_response_bytes", "max_error_bytes"])
def test_caps_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be >= 1"):
        OpenAICompatWorker("local:w", "m", "http://127.0.0.1:1/v1", **{field: 0})  # type: ignore[arg-type]
