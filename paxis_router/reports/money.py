"""Money as a report shows it: quantised for display only, savings as an amount and a share.

Amounts are stored and summed at full precision (the ledger's 1e-10 USD ticks; exact decimal
strings in JSON and CSV); they are rounded here, for a person to read, half to even, written out
in full with thousands separators (``$1,234.56``), never in exponent notation. A page picks one
number of places for all its money (``display_places``), so a column's decimals line up.

The frontier-only figure is the counterfactual ``paxis demo`` prints, in the same words
(``COUNTERFACTUAL_METHOD``), and savings read as ``paxis demo`` says them (``savings_text``; the
command line re-exports it).

Example:
    >>> usd_text(Decimal("1234.5678"), 2), usd_text(Decimal("-0.00004"), 4), usd_text(None)
    ('$1,234.57', '$0.0000', 'unknown')
    >>> savings_text(Decimal("0.12"), Decimal("0.10"))
    'none: routing cost $0.0200 MORE than frontier-only (+20.0%)'
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

COUNTERFACTUAL_METHOD = (
    "what each route's answering tokens would have cost at the top tier's prices"
)
"""How the frontier-only figure is computed: the words ``paxis demo`` uses."""


def counterfactual_note(top_tier: str | None = None) -> str:
    """The sentence a report puts next to its frontier-only figure.

    Example:
        >>> counterfactual_note("frontier:gpt-4o")[:60]
        "Frontier-only: what each route's answering tokens would have"
    """
    tier = f" ({top_tier})" if top_tier else ""
    return (
        f"Frontier-only: {COUNTERFACTUAL_METHOD}{tier}, as recorded by the router on each "
        "route's final ledger row; the same figure paxis demo prints."
    )


def display_places(largest: Decimal | None) -> int:
    """Decimals for a page whose largest amount is ``largest``: cents from $100 up, else 4
    (small ledgers would read $0.00 everywhere).

    Example:
        >>> display_places(Decimal("812.3")), display_places(Decimal("0.83"))
        (2, 4)
    """
    return 2 if largest is not None and abs(largest) >= 100 else 4


def quantise(value: Decimal, places: int) -> Decimal:
    """``value`` rounded half to even to ``places`` decimals (display only); never ``-0``."""
    with localcontext() as context:
        context.prec = max(context.prec, value.adjusted() + places + 2)
        rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return abs(rounded) if rounded.is_zero() else rounded


def usd_text(value: Decimal | None, places: int = 4) -> str:
    """``$1,234.5678``, ``-$0.0200`` or ``unknown`` (None: an unknown price)."""
    if value is None or not value.is_finite():
        return "unknown"
    rounded = quantise(value, places)
    text = f"{abs(rounded):,.{places}f}"
    return f"-${text}" if rounded < 0 else f"${text}"


def savings_text(spend: Decimal | None, counterfactual: Decimal | None, *, places: int = 4) -> str:
    """What routing saved against the frontier-only counterfactual, as an amount and a share.

    Example:
        >>> savings_text(Decimal("1.3362"), Decimal("5.1054"))
        '$3.7692 (73.8% less than frontier-only; it would cost 3.8x as much)'
        >>> savings_text(None, Decimal("0.10"))
        'unknown (some prices are unknown)'
    """
    if spend is None or counterfactual is None:
        return "unknown (some prices are unknown)"
    saved = counterfactual - spend
    if saved < 0:
        share = f" (+{float(-saved / counterfactual):.1%})" if counterfactual else ""
        return f"none: routing cost {usd_text(-saved, places)} MORE than frontier-only{share}"
    if not counterfactual:
        return f"{usd_text(saved, places)} (nothing to compare: frontier-only is $0)"
    share = f"{float(saved / counterfactual):.1%} less than frontier-only"
    ratio = f"; it would cost {float(counterfactual / spend):.1f}x as much" if spend else ""
    return f"{usd_text(saved, places)} ({share}{ratio})"


def savings_share(spend: Decimal, counterfactual: Decimal) -> float | None:
    """Savings as a fraction of the frontier-only cost (negative: routing cost more); None when
    frontier-only is $0.

    Example:
        >>> savings_share(Decimal(1), Decimal(4)), savings_share(Decimal(5), Decimal(4))
        (0.75, -0.25)
    """
    return float((counterfactual - spend) / counterfactual) if counterfactual else None
