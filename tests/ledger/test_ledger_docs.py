"""The ledger modules' docstring examples run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import paxis_router.ledger as ledger_package
from paxis_router.ledger import base, buffer, rollup, schema, sqlite
from paxis_router.reports import cost_report


@pytest.mark.parametrize(
    "module",
    [ledger_package, base, buffer, rollup, schema, sqlite, cost_report],
    ids=lambda m: m.__name__,
)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
