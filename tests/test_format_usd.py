"""pricing.format_usd: money for display, rounded, written out in full, 'unknown' for None."""

from __future__ import annotations

import doctest
from decimal import Decimal

import pytest

from paxis_router import pricing
from paxis_router.pricing import format_usd


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        # What a GPU-hour price divided by 3600 leaves: 28 significant digits.
        (Decimal("0.0000123456789012345678901234567"), 6, "0.000012"),
        (Decimal("0.0000175"), 6, "0.000018"),
        (Decimal("0.0000165"), 6, "0.000016"),  # half to even
        (Decimal("5E-7"), 6, "0.000000"),  # never exponent notation, never "-0"
        (Decimal("-1E-9"), 6, "0.000000"),
        (Decimal("1234.5"), 2, "1234.50"),
        (Decimal("1E+30"), 2, "1000000000000000000000000000000.00"),
        (Decimal(3), 0, "3"),
        (None, 6, "unknown"),
        (Decimal("NaN"), 6, "unknown"),
    ],
)
def test_format_usd(value: Decimal | None, places: int, shown: str) -> None:
    assert format_usd(value, places=places) == shown


def test_docstring_example() -> None:
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(format_usd, "format_usd", globs=vars(pricing)):
        runner.run(test)
    assert runner.summarize(verbose=False) == doctest.TestResults(failed=0, attempted=2)
