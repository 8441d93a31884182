"""Shadow sampling: on a small, seeded share of routes the worker answered alone, also ask the
next tier, so labelled history holds both tiers' answers on an unbiased sample (for
``paxis calibrate --ledger``).

A route is sampled when a hash of its ``request_id`` and the seed falls below the rate, so the
choice is reproducible and independent of the answer (unbiased). The shadow call runs after the
route's answer is decided and never changes it; it is recorded as its own ledger row with
decision ``shadow`` and ``final`` False, at its real cost (reports count it in spend, never in
the counterfactual or as the route's answer). The gate still decides: a tier the request may not
reach (e.g. sovereign data and a frontier provider) is never called; a spent team budget, an
open breaker or a context window too small also skip the shadow call.

By default the shadow call runs in the background (``ShadowBacklog``): the route returns as soon
as its answer is decided, and the Router keeps a strong reference to each pending shadow task
until it ends. ``Router.drain()`` awaits them all; ``route_many`` and ``Router.aclose()`` drain
before they return; ``route_sync`` (whose event loop closes when it returns) runs the shadow
call inline. The backlog is bounded: a sampled route that finds
``max_pending`` shadow calls already running is not shadowed, only counted
(``Router.shadow_skipped``). Skips depend on load, never on the answer, so the sample that
remains is still unbiased (a uniform thinning, heavier at busy times: a traffic mix that differs
by hour of day is then under-sampled at its busy hours). ``route_many`` never skips: its routes
wait for room (backpressure), since its caller waits for the whole batch anyway.

Errors: a shadow tier that fails (a ``WorkerError``) is recorded as a failed ``shadow`` attempt,
as inline. Anything else a background shadow call raises (a ``LedgerError`` or ``AuditError``:
lost cost data is a bug) is logged at ERROR when it happens and re-raised by the next
``drain()``, the first one with a note counting the others.

Example:
    >>> ShadowSampling(rate=1.0).sampled("req-1"), ShadowSampling(rate=0.0).sampled("req-1")
    (True, False)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 64
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class ShadowSampling:
    """Which routes get a shadow call, and how it runs.

    Args:
        rate: the share of routes sampled (0..1), chosen by a hash of the request id and
            ``seed`` (reproducible, unbiased).
        seed: the sampling seed.
        inline: run the shadow call inside the route (the sampled route waits for it); for
            tests and batch jobs. Default: in the background.
        max_pending: at most this many background shadow calls at once; a sampled route that
            finds the backlog full is not shadowed, only counted (``Router.shadow_skipped``).

    Example:
        >>> s = ShadowSampling(rate=0.5, seed=7)
        >>> s.sampled("req-42") == ShadowSampling(rate=0.5, seed=7).sampled("req-42")
        True
    """

    rate: float
    seed: int = 0
    inline: bool = False
    max_pending: int = DEFAULT_MAX_PENDING

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"shadow_rate must be in [0, 1], got {self.rate}")
        if self.max_pending < 1:
            raise ConfigError(f"shadow max_pending must be >= 1, got {self.max_pending}")

    @classmethod
    def coerce(cls, value: ShadowSampling | float | None) -> ShadowSampling | None:
        """``0.05`` ≡ ``ShadowSampling(rate=0.05)``; None or a rate of 0 turns sampling off."""
        if value is None or isinstance(value, ShadowSampling):
            return value if value is None or value.rate > 0 else None
        return cls(rate=float(value)) if value else None

    def sampled(self, request_id: str) -> bool:
        """True when the route of ``request_id`` is in the shadow sample."""
        if self.rate >= 1.0:
            return True
        digest = hashlib.blake2b(
            f"{self.seed}:{request_id}".encode(), digest_size=8, person=b"paxis-shadow"
        ).digest()
        return int.from_bytes(digest, "big") / _SCALE < self.rate


class ShadowBacklog:
    """The shadow calls running in the background: a strong reference to each until it ends,
    at most ``max_pending`` at once, and the errors they raised, kept for ``drain()``.

    Example:
        >>> import asyncio
        >>> async def call() -> None:
        ...     await asyncio.sleep(0)
        >>> async def main() -> tuple[bool, int, int]:
        ...     backlog = ShadowBacklog(max_pending=1)
        ...     started = await backlog.submit("r1", call)
        ...     await backlog.submit("r2", call)  # full: skipped, counted
        ...     await backlog.drain()
        ...     return started, backlog.skipped, backlog.pending
        >>> asyncio.run(main())
        (True, 1, 0)
    """

    def __init__(self, max_pending: int | None = DEFAULT_MAX_PENDING):
        max_pending = DEFAULT_MAX_PENDING if max_pending is None else max_pending
        if max_pending < 1:
            raise ConfigError(f"shadow max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending
        self.skipped = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self._error: BaseException | None = None
        self._more_errors = 0

    @property
    def pending(self) -> int:
        """How many shadow calls are running now."""
        return len(self._tasks)

    async def submit(
        self,
        route_id: str,
        call: Callable[[], Coroutine[object, object, object]],
        *,
        wait_for_room: bool = False,
    ) -> bool:
        """Start ``call()`` as a background task; when ``max_pending`` are already running,
        wait for one to end (``wait_for_room``) or return False, counted in ``skipped``."""
        while wait_for_room and len(self._tasks) >= self.max_pending and (mine := self._mine()):
            await asyncio.wait(mine, return_when=asyncio.FIRST_COMPLETED)
        if len(self._tasks) >= self.max_pending:
            self.skipped += 1
            if self.skipped & (self.skipped - 1) == 0:  # 1, 2, 4, 8 ...: a log line, not a flood
                logger.warning(
                    "shadow backlog full (%d pending): skipped the shadow call of route %s; "
                    "%d sample(s) skipped so far (raise calibration.max_pending or lower "
                    "shadow_rate)",
                    len(self._tasks),
                    route_id,
                    self.skipped,
                )
            return False
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            call(), name=f"paxis-shadow:{route_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _mine(self) -> tuple[asyncio.Task[object], ...]:
        """The pending tasks of the running event loop (another thread's loop has its own)."""
        loop = asyncio.get_running_loop()
        return tuple(t for t in self._tasks if t.get_loop() is loop)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            logger.warning(
                "shadow call %s was cancelled before it finished (its sample is lost); await "
                "Router.drain() or Router.aclose() before the event loop closes",
                task.get_name(),
            )
            return
        error = task.exception()
        if error is None:
            return
        logger.error("shadow call %s failed", task.get_name(), exc_info=error)
        if self._error is None:
            self._error = error
        else:
            self._more_errors += 1

    async def drain(self) -> None:
        """Wait for every pending shadow call of this event loop (also those started meanwhile),
        then re-raise the first error a shadow call raised since the last drain (each is logged
        when it happens)."""
        while mine := self._mine():
            # wait, not gather: a cancelled drain leaves the shadow calls running.
            await asyncio.wait(mine)
        error, more = self._error, self._more_errors
        self._error, self._more_errors = None, 0
        if error is not None:
            if more:
                error.add_note(f"and {more} more shadow call(s) failed (logged at ERROR)")
            raise error
