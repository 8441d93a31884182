"""The writer thread behind the SQLite and PostgreSQL ledgers: ``record`` queues, a thread commits.

``record`` must never block a route, so it converts the attempt to a row (validating it), puts it
on an in-memory queue and returns. One writer thread per ledger takes what is queued and commits
it in groups (group commit, as database WALs and log shippers do): it waits at most
``max_delay_s`` after the first queued row for more to arrive, then commits up to ``max_batch``
rows, rows and rollups in one transaction. Under load the groups grow by themselves (rows queue
while a commit runs), so one transaction carries many routes' rows.

Failures:

* a *transient* failure (database unreachable or restarting, locked, disk full) keeps the rows
  queued, in order, and retries with backoff (``retry_max_s``); while it lasts ``check()`` raises,
  so the router refuses paid calls it could not record;
* a *permanent* failure of some rows (a constraint the data breaks, e.g. a duplicate attempt) is
  isolated by committing the group's rows one by one; the rows that still fail are logged at
  ERROR and reported by the next ``flush()`` / ``close()``; the others are written.

What a crash can lose: the rows not yet committed. Normally those recorded in the last
``max_delay_s`` plus the commit in flight; while the database is failing, everything recorded
since the failure began (``check()`` refuses new paid calls then, so that is bounded by the routes
already in flight). ``flush()`` returns once every row recorded before it is committed, so a
caller that needs a row durable (a test, a batch job) flushes. A clean shutdown (``close()``, or
the interpreter exiting normally) flushes first and loses nothing while the database is
reachable.

Example:
    >>> written = []
    >>> writer = GroupWriter(lambda items, retry: written.extend(items), describe="demo")
    >>> writer.submit(["row 1", "row 2"])
    >>> writer.flush()
    >>> written
    ['row 1', 'row 2']
    >>> writer.close()
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from paxis_router.errors import LedgerError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BufferConfig:
    """How a ledger buffers writes (see the module docstring).

    Args:
        max_delay_s: the longest a recorded row waits for company before its commit starts.
        max_batch: the most rows one transaction carries.
        max_pending: queued rows beyond which ``check()`` refuses (the database is not keeping
            up or is down); ``record`` itself still accepts, so no spend goes unrecorded.
        flush_timeout_s: how long ``flush()`` / ``close()`` and reads wait for queued rows to be
            written before they raise LedgerError.
        retry_max_s: the longest pause between retries while the database is failing.
        probe_interval_s: how often an idle writer checks that the database still answers
            (network ledgers only), so ``check()`` notices an outage without a write.
    """

    max_delay_s: float = 0.01
    max_batch: int = 1000
    max_pending: int = 100_000
    flush_timeout_s: float = 30.0
    retry_max_s: float = 2.0
    probe_interval_s: float = 5.0


_RETRY_MIN_S = 0.05
_IDLE_EXIT_S = 60.0
_OPEN: weakref.WeakSet[GroupWriter[object]] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A clean interpreter exit writes what is still queued (owners that forgot ``close``)."""
    for writer in list(_OPEN):
        try:
            writer.close()
        except LedgerError as exc:
            logger.error("ledger at interpreter exit: %s", exc)


class GroupWriter(Generic[T]):
    """Queue items and commit them in groups on a writer thread.

    Args:
        commit: writes items in one transaction, all or none; raises on failure. ``retry`` is
            True when these items failed before (a network ledger may have committed them
            without hearing back, and drops those already there).
        describe: the ledger, for messages (never a password).
        is_permanent: which commit errors no retry can fix (default: none).
        probe: checks that the database answers (raises if not); run when idle.
        config: delays, sizes and timeouts.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T], bool], None],
        *,
        describe: str,
        is_permanent: Callable[[BaseException], bool] = lambda exc: False,
        probe: Callable[[], None] | None = None,
        config: BufferConfig | None = None,
    ):
        self._commit = commit
        self._describe = describe
        self._is_permanent = is_permanent
        self._probe = probe
        self.config = config or BufferConfig()
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[T] = deque()
        self._first_at = 0.0  # when the oldest queued item arrived
        self._submitted = 0
        self._done = 0  # committed or rejected, in order
        self._failing: BaseException | None = None  # the transient error now, if any
        self._retry_at = 0.0
        self._backoff = 0.0
        self._retry_now = False
        self._failures = 0  # failed write attempts so far
        self._rejected: list[tuple[T, BaseException]] = []
        self._dead: BaseException | None = None
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_ok = time.monotonic()

    # --- the caller's side ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Items queued and not yet written."""
        with self._cond:
            return len(self._queue)

    def submit(self, items: Sequence[T]) -> None:
        """Queue items for the writer thread; returns at once (never waits on the database)."""
        with self._cond:
            if self._closed:
                raise LedgerError(f"ledger {self._describe} is closed; nothing can be recorded")
            was_empty = not self._queue
            if was_empty:
                self._first_at = time.monotonic()
            self._queue.extend(items)
            self._submitted += len(items)
            if self._thread is None:
                self._start()
            elif was_empty or len(self._queue) >= self.config.max_batch:
                # Only these change what the writer waits for: it sleeps until the first row's
                # deadline otherwise, and a wake-up per row would cost the caller the GIL.
                self._cond.notify_all()

    def check(self) -> None:
        """Raise LedgerError when a row recorded now could not be written now (the writer is
        failing or dead, too much is queued, or the ledger is closed). Never waits."""
        with self._cond:
            if self._closed:
                raise LedgerError(f"ledger {self._describe} is closed; nothing can be recorded")
            if self._dead is not None:
                raise LedgerError(
                    f"ledger {self._describe}: its writer stopped ({self._dead!r}); "
                    f"{len(self._queue)} attempt(s) wait unwritten; reopen the ledger"
                )
            if self._failing is not None:
                raise LedgerError(
                    f"ledger {self._describe} cannot record right now: {self._failing}; "
                    f"{len(self._queue)} attempt(s) wait in memory and are retried"
                )
            if len(self._queue) >= self.config.max_pending:
                raise LedgerError(
                    f"ledger {self._describe} has {len(self._queue)} attempt(s) waiting to be "
                    f"written (limit {self.config.max_pending}); the database is not keeping up"
                )

    def sync(self, timeout_s: float | None = None) -> None:
        """Wait until every item submitted so far is written (or rejected), for a reader that
        must see its own writes. Raises LedgerError when a write attempt made meanwhile fails
        (the items stay queued) or after ``timeout_s`` (default: the config's)."""
        self._wait(timeout_s, patient=False)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every item submitted so far is written (the writer retrying while the
        database fails), then raise LedgerError for rows the database refused since the last
        flush (logged at ERROR when refused). Raises LedgerError after ``timeout_s`` (default:
        the config's); the items not yet written stay queued and are retried."""
        self._wait(timeout_s, patient=True)
        with self._cond:
            rejected, self._rejected = self._rejected, []
        if rejected:
            first = rejected[0][1]
            raise LedgerError(
                f"ledger {self._describe} refused {len(rejected)} attempt(s) (logged at "
                f"ERROR): {first}"
            ) from first

    def close(self, timeout_s: float | None = None) -> None:
        """Flush, then stop the writer thread. Rows still unwritten are logged at ERROR and
        reported by the LedgerError raised here. Closing twice does nothing."""
        with self._cond:
            if self._closed:
                return
            self._closed = True  # no more submits; what was queued is written below
        error: LedgerError | None = None
        try:
            self.flush(timeout_s)
        except LedgerError as exc:
            error = exc
        with self._cond:
            self._closing = True  # no more submits; the writer stops after its current commit
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.config.flush_timeout_s if timeout_s is None else timeout_s)
        _OPEN.discard(self)  # type: ignore[arg-type]  # a GroupWriter[T] is one of them
        with self._cond:
            lost = list(self._queue)
        if lost:
            logger.error(
                "ledger %s closed with %d attempt(s) unwritten: %r", self._describe, len(lost), lost
            )
            raise LedgerError(
                f"ledger {self._describe} closed with {len(lost)} attempt(s) that could not be "
                f"written ({error or self._failing}); they are logged at ERROR"
            )
        if error is not None:
            raise error

    def _wait(self, timeout_s: float | None, *, patient: bool) -> None:
        limit = self.config.flush_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        with self._cond:
            target = self._submitted
            if self._done >= target:
                return
            failures = self._failures
            self._retry_now = True
            self._cond.notify_all()
            while self._done < target:
                if self._dead is not None:
                    raise LedgerError(
                        f"ledger {self._describe}: its writer stopped ({self._dead!r}); "
                        f"{len(self._queue)} attempt(s) wait unwritten"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (not patient and self._failures > failures):
                    after = f"after {limit:g} s " if remaining <= 0 else ""
                    raise LedgerError(
                        f"ledger {self._describe}: {target - self._done} attempt(s) not written "
                        f"{after}({self._failing or 'the writer is still busy'}); they stay "
                        "queued and are retried"
                    )
                self._cond.wait(remaining)

    # --- the writer thread ----------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"paxis-ledger-writer {self._describe}", daemon=True
        )
        self._thread.start()
        _OPEN.add(self)  # type: ignore[arg-type]  # a GroupWriter[T] is one of them

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                if batch:
                    self._write(batch)
                else:
                    self._run_probe()
        except BaseException as exc:  # the thread must report any death, never die silently
            logger.exception("ledger %s: writer thread stopped", self._describe)
            with self._cond:
                self._dead = exc
                self._cond.notify_all()

    def _next_batch(self) -> list[T] | None:
        """The items to write next; [] to probe the database; None to stop."""
        config = self.config
        with self._cond:
            while True:
                now = time.monotonic()
                if self._closing:
                    return None  # close() flushed first; what is left stays reported as lost
                urgent = self._retry_now
                if self._queue:
                    if self._failing is not None and not urgent and now < self._retry_at:
                        self._cond.wait(self._retry_at - now)
                        continue
                    due = self._first_at + config.max_delay_s
                    if not urgent and len(self._queue) < config.max_batch and now < due:
                        self._cond.wait(due - now)
                        continue
                    self._retry_now = False
                    return list(itertools.islice(self._queue, config.max_batch))
                if self._probe is not None:
                    if self._failing is not None:
                        probe_at = self._retry_at if not urgent else now
                    else:
                        probe_at = self._last_ok + config.probe_interval_s
                    if now >= probe_at:
                        self._retry_now = False
                        return []
                    self._cond.wait(probe_at - now)
                else:
                    self._retry_now = False
                    if not self._cond.wait(_IDLE_EXIT_S) and not self._queue:
                        # Idle: the thread ends (the next submit starts another), so a ledger
                        # nobody closes does not keep a thread, and itself, alive for good.
                        self._thread = None
                        return None

    def _write(self, batch: list[T]) -> None:
        retry = self._failing is not None
        try:
            self._commit(batch, retry)
        except Exception as exc:  # classified below; the database driver's errors vary
            if self._is_permanent(exc):
                self._isolate(batch, retry)
            else:
                self._fail(exc)
            return
        self._succeed(len(batch))

    def _isolate(self, batch: list[T], retry: bool) -> None:
        """Commit a group that broke a constraint one item at a time; reject the bad ones."""
        for item in batch:
            try:
                self._commit((item,), retry)
            except Exception as exc:  # classified as above
                if not self._is_permanent(exc):
                    self._fail(exc)
                    return  # this item and the rest stay queued, in order
                logger.error("ledger %s refused %r: %s", self._describe, item, exc)
                with self._cond:
                    self._rejected.append((item, exc))
            self._succeed(1)

    def _succeed(self, count: int) -> None:
        with self._cond:
            for _ in range(count):
                self._queue.popleft()
            self._done += count
            if self._queue:
                self._first_at = time.monotonic()
            if self._failing is not None:
                logger.warning("ledger %s: writing again after: %s", self._describe, self._failing)
            self._failing = None
            self._backoff = 0.0
            self._last_ok = time.monotonic()
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._failing is None:
                logger.error(
                    "ledger %s cannot write (%d attempt(s) queued, retrying): %s",
                    self._describe,
                    len(self._queue),
                    exc,
                )
            self._failing = exc
            self._failures += 1
            self._backoff = min(max(self._backoff * 2, _RETRY_MIN_S), self.config.retry_max_s)
            self._retry_at = time.monotonic() + self._backoff
            self._cond.notify_all()

    def _run_probe(self) -> None:
        assert self._probe is not None
        try:
            self._probe()
        except Exception as exc:  # any failure to answer means the database is not usable now
            self._fail(exc)
            return
        with self._cond:
            self._failing = None
            self._backoff = 0.0
            self._last_ok = time.monotonic()
            self._cond.notify_all()
