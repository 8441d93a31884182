"""Close a client's connections when the event loop they belong to shuts down.

An asyncio connection belongs to the loop that opened it; once that loop is closed nothing can
close it cleanly, and the garbage collector later reports it (``ResourceWarning: unclosed
transport``). A worker called from a fresh ``asyncio.run`` per call would leak one socket a call.

:class:`LoopGuard` ties a close function to the running loop through an async generator: every
loop runner (``asyncio.run``, ``asyncio.Runner``, uvicorn, pytest-asyncio,
:class:`~paxis_router.workers.background_loop.BackgroundLoop`) finalises the live async
generators of its loop before closing it (``loop.shutdown_asyncgens()``), and that runs the
close function while the loop can still do it. When a client moves to another loop, the
previous loop's connections are closed on that loop (if it still runs) or forgotten (if it was
closed without finalising its generators: nothing can close them any more).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable


async def _closer(
    loop: asyncio.AbstractEventLoop, close: Callable[[], Awaitable[None]]
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not loop.is_closed():
            await close()


async def _finish(guard: AsyncGenerator[None, None]) -> None:
    await guard.aclose()


class LoopGuard:
    """Runs a close function when the loop it was bound in shuts down (see the module doc)."""

    def __init__(self) -> None:
        self._guard: AsyncGenerator[None, None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop bound last, or None."""
        return self._loop

    async def bind(self, close: Callable[[], Awaitable[None]]) -> None:
        """Bind to the running loop: ``close`` runs when it shuts down. A previous binding to
        another loop is released first (its close runs on its own loop)."""
        self.release()
        loop = asyncio.get_running_loop()
        guard = _closer(loop, close)
        await anext(guard)  # the first step, inside the loop, registers it with the loop
        self._guard, self._loop = guard, loop

    def release(self) -> None:
        """Forget the current binding: its close runs now on its own loop when that loop still
        runs in another thread (or later, when it runs again), and not at all when the loop is
        closed (then it has nothing left to close cleanly)."""
        guard, loop = self._guard, self._loop
        self._guard = self._loop = None
        if guard is None or loop is None:
            return
        if loop.is_closed():
            # Finish the generator here (its finally sees the closed loop and does nothing), so
            # that garbage-collecting it does not ask the closed loop to finalise it.
            closing = guard.aclose()
            with contextlib.suppress(StopIteration):
                closing.send(None)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(_finish(guard))
        else:
            asyncio.run_coroutine_threadsafe(_finish(guard), loop)

    async def aclose(self) -> None:
        """Run the close now, in the running loop (the one bound), and forget the binding."""
        guard, loop = self._guard, self._loop
        self._guard = self._loop = None
        if guard is None:
            return
        if loop is asyncio.get_running_loop():
            await guard.aclose()
        else:
            self._guard, self._loop = guard, loop
            self.release()
