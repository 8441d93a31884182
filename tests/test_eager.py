"""eager_gather: results in order, no task for what finishes at once, and nothing left running
behind an exception or a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from paxis_router._eager import eager_gather


async def test_results_in_order_and_instant_ones_run_on_the_callers_task() -> None:
    ran_on: list[asyncio.Task[object] | None] = []

    async def instant(x: int) -> int:
        ran_on.append(asyncio.current_task())
        return x

    async def waits(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 10

    caller = asyncio.current_task()
    assert await eager_gather([instant(1), waits(2), instant(3)]) == [1, 20, 3]
    assert ran_on == [caller, caller]


async def test_the_first_error_cancels_the_waiting_and_closes_the_unstarted() -> None:
    cancelled = asyncio.Event()
    started: list[str] = []

    async def slow() -> str:
        started.append("slow")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slow"

    async def boom() -> str:
        started.append("boom")
        raise ValueError("boom")

    async def never() -> str:
        started.append("never")
        return "never"

    with pytest.raises(ValueError, match="boom"):
        await eager_gather([slow(), boom(), never()])
    await asyncio.sleep(0)
    assert cancelled.is_set()
    assert started == ["slow", "boom"]  # never() was closed, not run (and no "never awaited")


async def test_cancelling_the_caller_cancels_the_waiting_coroutines() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(eager_gather([slow(), slow()]))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_a_coroutine_resumed_in_its_task_sees_values_and_exceptions() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()

    async def two_waits() -> str:
        a = await first
        try:
            await second
        except KeyError as exc:
            return f"{a} then {exc.args[0]}"
        return "unreachable"

    pending = asyncio.ensure_future(eager_gather([two_waits()]))
    await asyncio.sleep(0)
    first.set_result(7)
    await asyncio.sleep(0)
    second.set_exception(KeyError("missing"))
    assert await pending == ["7 then missing"]
