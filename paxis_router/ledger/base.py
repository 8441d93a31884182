"""The LedgerSink protocol and how money is stored.

Money is kept in the database as INTEGER ticks of 1e-10 USD, so that SQL sums are exact and fast;
the Python side sees ``Decimal`` only. NULL means unknown, never 0.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from paxis_router.types import CallRecord

USD_TICK = Decimal("1e-10")
TICKS_PER_USD = 10_000_000_000


@runtime_checkable
class LedgerSink(Protocol):
    """Persists one attempt; fast (a network sink buffers). Raises LedgerError on failure."""

    def record(self, entry: CallRecord) -> None: ...


def usd_to_ticks(value: Decimal | None) -> int | None:
    """Decimal USD -> integer ticks of 1e-10 USD (banker's rounding); None stays None."""
    if value is None:
        return None
    # scaleb(10) is an exact shift of the exponent: the same value as value / USD_TICK, faster.
    return int(value.scaleb(10).to_integral_value(rounding=ROUND_HALF_EVEN))


def ticks_to_usd(value: int | None) -> Decimal | None:
    """Integer ticks -> Decimal USD; None stays None."""
    if value is None:
        return None
    return Decimal(value) * USD_TICK
