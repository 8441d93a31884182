"""The examples in the skills modules' docstrings run and give what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import paxis_router.skills as skills_package
from paxis_router.skills import (
    _ids,
    _porter,
    _scoring,
    _segment,
    bm25,
    bodies,
    cache,
    evaluate,
    hints,
    library,
    parse,
    prompt,
    rerank,
    tokenize,
)


@pytest.mark.parametrize(
    "module",
    [
        skills_package,
        _ids,
        _porter,
        _scoring,
        _segment,
        bm25,
        bodies,
        cache,
        evaluate,
        hints,
        library,
        parse,
        prompt,
        rerank,
        tokenize,
    ],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
