"""Run coroutines concurrently, without a task for those that finish without waiting.

``asyncio.gather`` wraps every coroutine in a task and returns only after a turn of the event
loop, even when each of them finishes at once (a regex verifier, a skill body already cached).
On the router's hot path that turn costs more than the work. :func:`eager_gather` runs each
coroutine on the caller's task until its first real wait, as Python 3.12's eager tasks do;
only those still waiting get a task, and the caller awaits just those.

Example:
    >>> import asyncio
    >>> async def double(x):
    ...     return 2 * x
    >>> async def later(x):
    ...     await asyncio.sleep(0)
    ...     return x
    >>> asyncio.run(eager_gather([double(1), later(5), double(3)]))
    [2, 5, 6]
"""

from __future__ import annotations

import asyncio
import collections.abc
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine, Generator, Sequence

T = TypeVar("T")

_NOT_YET: Any = object()  # a coroutine still waiting (Any: a slot of the result list)


async def eager_gather(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """The results of ``coros``, in order (see the module docstring).

    Unlike ``asyncio.gather``, the first exception cancels what is still waiting and closes the
    coroutines not yet started, then propagates: nothing is left running behind the caller.
    """
    results: list[T] = [_NOT_YET] * len(coros)
    waiting: dict[int, asyncio.Task[T]] = {}
    try:
        for index, coro in enumerate(coros):
            try:
                suspended_on = coro.send(None)
            except StopIteration as stop:
                results[index] = stop.value
                continue
            waiting[index] = asyncio.ensure_future(_Resumed(coro, suspended_on))
        if waiting:
            done = await asyncio.gather(*waiting.values())
            for index, value in zip(waiting, done, strict=True):
                results[index] = value
    except BaseException:
        for task in waiting.values():
            task.cancel()
        for index, coro in enumerate(coros):
            if index not in waiting:
                coro.close()  # not started (or already finished: a no-op)
        raise
    return results


class _Resumed(collections.abc.Coroutine):  # type: ignore[type-arg]
    """``coro``, which already ran up to its first wait (on ``suspended_on``), as a coroutine a
    task can drive: the task's first step gets that wait back, and every later value or
    exception the task sends or throws goes to ``coro``. A task cancelled before its first step
    throws CancelledError straight into ``coro``, at its wait, as ``asyncio.gather`` would."""

    __slots__ = ("coro", "suspended_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], suspended_on: Any):  # Any: a future
        self.coro = coro
        self.suspended_on: Any = suspended_on

    def send(self, value: Any) -> Any:  # Any: what the event loop passes through
        if self.suspended_on is not _NOT_YET:
            pending, self.suspended_on = self.suspended_on, _NOT_YET
            return pending
        return self.coro.send(value)

    def throw(self, exc: Any, value: Any = None, traceback: Any = None) -> Any:  # Any: as send
        self.suspended_on = _NOT_YET
        if value is None and traceback is None:
            return self.coro.throw(exc)
        return self.coro.throw(exc, value, traceback)  # pragma: no cover - the old signature

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self  # type: ignore[return-value]

    def __next__(self) -> Any:
        return self.send(None)
