"""The LedgerSink protocol, and what a router calls on its sinks around a route.

A sink's one required method is ``record(entry) -> None``: fast and synchronous, it must not wait
on a disk or a network (the SQL ledgers queue the row for a writer thread). The SQL ledgers also
have, and any sink may have:

* ``check()``: raise LedgerError when an attempt recorded now could not be written now (the
  database unreachable, the writer failing, too much queued, the sink closed); never waits.
  The router calls it on every sink **before each call that costs money** and refuses the call
  when it raises, so no spend goes unrecorded: ``check_sinks(sinks)``.
* ``flush()``: return once everything recorded is written (raises what went wrong meanwhile);
  ``drain()`` is the same for async callers. The router's ``drain()`` calls
  ``await drain_sinks(sinks)`` after its own background work, so its caller sees write errors.
* ``close()`` / ``aclose()``: flush, then release the connection; the sink's owner calls it.

Money is kept in the database as INTEGER ticks of 1e-10 USD (``paxis_router.ledger.schema``).

Example:
    >>> from paxis_router.testing import call_record
    >>> class Printed:
    ...     def record(self, entry):
    ...         print(entry.route_id)
    >>> sinks = [Printed()]
    >>> check_sinks(sinks)  # nothing to check: Printed has no check()
    >>> sinks[0].record(call_record("r1"))
    r1
    >>> flush_sinks(sinks)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from paxis_router.ledger.schema import TICKS_PER_USD, USD_TICK, ticks_to_usd, usd_to_ticks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from paxis_router.types import CallRecord

__all__ = [
    "TICKS_PER_USD",
    "USD_TICK",
    "LedgerSink",
    "check_sinks",
    "drain_sinks",
    "flush_sinks",
    "ticks_to_usd",
    "usd_to_ticks",
]


@runtime_checkable
class LedgerSink(Protocol):
    """Persists one attempt; fast (a disk or network sink buffers). Raises LedgerError when the
    attempt can never be stored (e.g. a naive timestamp) or the sink is closed."""

    def record(self, entry: CallRecord) -> None: ...


def check_sinks(sinks: Iterable[object]) -> None:
    """Call ``check()`` on every sink that has one (raises its LedgerError). Never waits: the
    router calls it before every paid call."""
    for sink in sinks:
        check = getattr(sink, "check", None)
        if check is not None:
            check()


def flush_sinks(sinks: Iterable[object]) -> None:
    """Call ``flush()`` on every sink that has one; raises the first LedgerError after trying
    them all."""
    first: BaseException | None = None
    for sink in sinks:
        flush = getattr(sink, "flush", None)
        if flush is None:
            continue
        try:
            flush()
        except Exception as exc:  # every sink gets its flush; the first error is raised after
            first = first or exc
    if first is not None:
        raise first


async def drain_sinks(sinks: Iterable[object]) -> None:
    """``flush_sinks`` for async callers: runs in a thread, the event loop is not blocked."""
    await asyncio.to_thread(flush_sinks, list(sinks))
