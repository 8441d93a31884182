"""The examples in the verifiers' docstrings run and give what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from paxis_router.config import verifiers as specs
from paxis_router.verifiers import (
    arithmetic,
    base,
    callable as callable_module,
    combine,
    json_schema,
    logprob,
    non_empty,
    regex,
)


@pytest.mark.parametrize(
    "module",
    [arithmetic, base, callable_module, combine, json_schema, logprob, non_empty, regex, specs],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
