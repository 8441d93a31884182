"""The audit modules' docstring examples run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from paxis_router.governance import _audit_format, _audit_verify, audit


@pytest.mark.parametrize("module", [audit, _audit_format, _audit_verify])
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
