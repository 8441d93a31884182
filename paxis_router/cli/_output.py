"""Writing a command's results to stdout (the library itself never prints), and money as people
read it.

Money is stored and summed at full precision; it is rounded only here, for display: one request's
cost to 6 decimals, totals to 4, JSON to the ledger's resolution (10 decimals, 1e-10 USD ticks),
never in exponent notation. Savings are shown as an amount and a percentage of the frontier-only
cost, and a negative saving as what it is: routing that cost more.
"""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from typing import Any

from paxis_router.pricing import format_usd
from paxis_router.reports.money import savings_text

__all__ = [
    "JSON_PLACES",
    "emit",
    "emit_json",
    "percent_text",
    "plain",
    "savings_text",  # one wording for paxis demo, route and report (reports/money.py)
    "usd",
    "usd_json",
]

JSON_PLACES = 10
"""Decimals of money in JSON output: the ledger's resolution (ticks of 1e-10 USD)."""


_LITERAL = re.compile(r"``([^`]+)``")


def plain(doc: str | None) -> str:
    """A module docstring as command-line help: Sphinx ``literals`` become plain text.

    Example:
        >>> plain("writes ``paxis-ledger.db``")
        'writes paxis-ledger.db'
    """
    return _LITERAL.sub(r"\1", doc or "")


def emit(text: str = "") -> None:
    """Write one line to stdout."""
    sys.stdout.write(f"{text}\n")


def _default(value: Any) -> Any:  # Any: json.dumps' default hook
    if isinstance(value, Decimal):
        return f"{value:f}" if value.is_finite() else str(value)  # never exponent notation
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(obj: Any) -> None:  # Any: any JSON-serialisable value
    """Write ``obj`` as JSON (Decimal as a fixed-point string) to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")


def usd(value: Decimal | None, *, places: int = 6) -> str:
    """``$0.000583``, ``-$1.2000``, or ``unknown``: dollars for a person to read.

    Example:
        >>> usd(Decimal("5.833333333333333333333333333E-7")), usd(Decimal("-1.2"), places=4)
        ('$0.000001', '-$1.2000')
    """
    text = format_usd(value, places=places)
    if text == "unknown":
        return text
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def usd_json(value: Decimal | None) -> str | None:
    """Money for JSON output: a fixed-point string at the ledger's resolution, or None (unknown).

    Example:
        >>> usd_json(Decimal("5.833333333333333333333333333E-7")), usd_json(None)
        ('0.0000005833', None)
    """
    return None if value is None or not value.is_finite() else format_usd(value, places=JSON_PLACES)


def percent_text(value: float | None) -> str:
    """``75.9%``, or ``n/a`` when there is nothing to divide by."""
    return "n/a" if value is None else f"{value:.1%}"
