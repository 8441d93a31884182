"""The examples in the integrations' docstrings run and give what they show."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from paxis_router.integrations import langchain, litellm
from paxis_router.workers.litellm import load_litellm


@pytest.fixture(autouse=True)
def _restore_litellm_providers() -> Iterator[None]:
    module: Any = load_litellm()  # Any: the litellm module, untyped
    saved = list(module.custom_provider_map)
    yield
    module.custom_provider_map = saved


@pytest.mark.parametrize("module", [langchain, litellm], ids=lambda m: m.__name__.rsplit(".")[-1])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
