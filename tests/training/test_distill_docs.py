"""The doc examples of the flywheel modules run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from paxis_router.training import distill, rewards, worker_plan


@pytest.mark.parametrize("module", [distill, rewards, worker_plan], ids=lambda m: m.__name__)
def test_doc_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
