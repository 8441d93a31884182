"""Connections and event loops: none leaks when a loop ends, sync callers reuse one loop.

The observable is the fake upstream's count of connections still open (the server sees a
client's close as end-of-file) and of connections accepted; a socket left to the garbage
collector would also fail the test (``filterwarnings = error`` turns its ResourceWarning into
an error, and each test here collects garbage before it ends).
"""

from __future__ import annotations

import asyncio
import doctest
import gc
import threading
from typing import TYPE_CHECKING

import pytest

from paxis_router import Router
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.types import ChatRequest
from paxis_router.workers import background_loop
from paxis_router.workers._loop_guard import LoopGuard
from paxis_router.workers.background_loop import BackgroundLoop, run_sync
from paxis_router.workers.openai_compat import OpenAICompatWorker

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="42") as up:
        yield up


def _ask() -> ChatRequest:
    return ChatRequest.from_text("6*7?")


def test_asyncio_run_per_call_closes_each_calls_connection(upstream: FakeUpstream) -> None:
    worker = OpenAICompatWorker("local:w", "m", upstream.base_url, timeout_s=5)
    first = asyncio.run(worker.complete(_ask(), None))
    assert upstream.wait_for_open_connections(0)  # closed as its loop shut down
    second = asyncio.run(worker.complete(_ask(), None))
    assert upstream.wait_for_open_connections(0)
    gc.collect()
    assert (first.content, second.content, upstream.connections) == ("42", "42", 2)


def test_route_sync_leaks_no_connection(upstream: FakeUpstream) -> None:
    worker = OpenAICompatWorker("local:w", "m", upstream.base_url, timeout_s=5)
    router = Router(tiers=[worker])
    answers = [router.route_sync(_ask()).content for _ in range(3)]
    run_sync(router.aclose())
    assert upstream.wait_for_open_connections(0)
    gc.collect()
    assert answers == ["42"] * 3


def test_sync_callers_on_one_background_loop_reuse_one_connection(
    upstream: FakeUpstream,
) -> None:
    loop = BackgroundLoop(name="test-loop")
    worker = OpenAICompatWorker("local:w", "m", upstream.base_url, timeout_s=5)
    answers = [loop.run(worker.complete(_ask(), None)) for _ in range(3)]
    other: list[str] = []
    thread = threading.Thread(
        target=lambda: other.append(loop.run(worker.complete(_ask(), None)).content)
    )
    thread.start()
    thread.join()
    assert upstream.open_connections == 1
    loop.close()  # shuts the loop down as asyncio.run does: the pool closes with it
    assert upstream.wait_for_open_connections(0)
    gc.collect()
    assert [a.content for a in answers] + other == ["42"] * 4
    assert upstream.connections == 1


def test_the_shared_loop_serves_run_sync() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert run_sync(where()) == "paxis-sync-loop"


def test_run_from_inside_the_loop_would_deadlock_and_says_so() -> None:
    loop = BackgroundLoop()

    async def inner() -> int:
        return 1

    async def outer() -> int:
        return loop.run(inner())

    with pytest.raises(RuntimeError, match="inside the background loop it runs on"):
        loop.run(outer())
    loop.close()


def test_errors_of_the_coroutine_reach_the_caller() -> None:
    loop = BackgroundLoop()

    async def fail() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        loop.run(fail())
    loop.close()
    loop.close()  # closing twice is harmless


def test_a_pool_moving_to_a_new_loop_closes_the_old_loops_connections_there(
    upstream: FakeUpstream,
) -> None:
    loop = BackgroundLoop(name="test-old")
    worker = OpenAICompatWorker("local:w", "m", upstream.base_url, timeout_s=5)
    loop.run(worker.complete(_ask(), None))
    assert upstream.open_connections == 1
    answer = asyncio.run(worker.complete(_ask(), None))  # another loop, still running
    assert upstream.wait_for_open_connections(0)
    loop.close()
    gc.collect()
    assert (answer.content, upstream.connections) == ("42", 2)


def test_a_guard_runs_its_close_when_its_loop_shuts_down() -> None:
    closed: list[str] = []
    guard = LoopGuard()

    async def close() -> None:
        closed.append("closed")

    async def bind() -> None:
        await guard.bind(close)

    asyncio.run(bind())
    assert closed == ["closed"]
    guard.release()  # its loop is closed: nothing left to do, and nothing raised
    assert closed == ["closed"]


def test_a_guard_released_after_a_loop_closed_unfinalised_does_not_raise() -> None:
    closed: list[str] = []
    guard = LoopGuard()

    async def close() -> None:
        closed.append("closed")

    async def bind() -> None:
        await guard.bind(close)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(bind())
    loop.close()  # closed without shutdown_asyncgens: the close cannot run any more
    guard.release()
    gc.collect()
    assert closed == []


def test_background_loop_docstring_examples() -> None:
    result = doctest.testmod(background_loop)
    assert result.attempted > 0
    assert result.failed == 0
