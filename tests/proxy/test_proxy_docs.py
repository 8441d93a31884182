"""The examples in the proxy's docstrings run and give what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import paxis_router.proxy as proxy_package
from paxis_router.proxy import app, config


@pytest.mark.parametrize(
    "module", [proxy_package, app, config], ids=lambda m: m.__name__.rsplit(".", 1)[-1]
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
