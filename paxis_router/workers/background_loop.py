"""One long-lived event loop in a background thread, for synchronous callers.

``asyncio.run`` per call starts and closes an event loop each time, so a worker's keep-alive
connections (which belong to one loop) can never be reused and must be reopened per call.
:func:`run_sync` runs a coroutine on one shared loop in a daemon thread instead: every sync
call, from any thread, reuses the same loop and so the same connections. The loop starts on
first use (importing this module starts nothing), restarts in a forked child, and is shut down
at interpreter exit the way ``asyncio.run`` shuts a loop down (tasks cancelled, async
generators finalised, so pooled connections are closed).

Example:
    >>> async def answer() -> int:
    ...     return 42
    >>> run_sync(answer())
    42
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")


class BackgroundLoop:
    """An event loop running in its own daemon thread; :meth:`run` blocks on a coroutine there.

    ``close_at_exit`` closes it at interpreter exit (the shared loop of :func:`run_sync` does).

    Example:
        >>> loop = BackgroundLoop()
        >>> async def double(x: int) -> int:
        ...     return 2 * x
        >>> loop.run(double(21)), loop.run(double(4))
        (42, 8)
        >>> loop.close()
    """

    def __init__(self, name: str = "paxis-sync-loop", *, close_at_exit: bool = False) -> None:
        self.name = name
        self.close_at_exit = close_at_exit
        self._exit_hook = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def run(self, coro: Coroutine[object, object, T]) -> T:
        """Run ``coro`` on the background loop and return its result (or raise its error).

        Raises RuntimeError when called from the loop's own thread (it would wait on itself).
        Interrupted (KeyboardInterrupt) while waiting, the coroutine is cancelled.
        """
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "run_sync was called from inside the background loop it runs on; await the "
                "coroutine instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            # First use, or a forked child (whose copy of the loop has no thread running it).
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name=self.name, daemon=True)
            thread.start()
            started.wait()
            self._loop, self._thread, self._pid = loop, thread, os.getpid()
            if self.close_at_exit and not self._exit_hook:
                atexit.register(self.close)
                self._exit_hook = True
            return loop

    def close(self) -> None:
        """Shut the loop down as ``asyncio.run`` does (cancel tasks, finalise async generators
        so connection pools close, stop the default executor), then stop its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            if loop is None or thread is None or self._pid != os.getpid() or loop.is_closed():
                return
        done = asyncio.run_coroutine_threadsafe(_shutdown(), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            done.result(timeout=10)  # a task that will not end is left to the thread's end
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()


async def _shutdown() -> None:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


_SHARED = BackgroundLoop(close_at_exit=True)


def run_sync(coro: Coroutine[object, object, T]) -> T:
    """Run ``coro`` on the process's shared background loop and return its result.

    What ``Router.route_sync`` and the framework bridges use, so sync calls reuse one loop and
    its keep-alive connections. Safe from several threads at once; not from inside that loop.
    """
    return _SHARED.run(coro)
