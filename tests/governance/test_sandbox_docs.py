"""The examples in the sandbox and secrets modules' docstrings run and give what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from paxis_router.governance import _sandbox_cgroup, sandbox, secrets


@pytest.mark.parametrize(
    "module", [sandbox, secrets, _sandbox_cgroup], ids=lambda m: m.__name__.rsplit(".", 1)[-1]
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
