"""The top-level API: a small, sorted ``__all__`` read from ``__init__.pyi``, loaded lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import paxis_router

STUB = Path(paxis_router.__file__).with_suffix(".pyi")


def test_all_is_sorted_unique_and_small() -> None:
    exported = paxis_router.__all__
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)
    assert 40 <= len(exported) <= 60  # the core path and the exceptions a caller catches


def test_every_export_is_the_object_its_stub_line_names() -> None:
    stub = ast.parse(STUB.read_text(encoding="utf-8"))
    named = {
        alias.name: node.module
        for node in stub.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert sorted(named) == paxis_router.__all__
    for name, module in named.items():
        assert module is not None
        value = getattr(paxis_router, name)
        assert value is getattr(__import__(module, fromlist=[name]), name), name
        assert getattr(value, "__module__", "").startswith("paxis_router"), name


def test_the_exceptions_are_loaded_at_once_and_the_rest_on_first_use() -> None:
    code = (
        "import sys, paxis_router\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('paxis_router'))\n"
        "names = vars(paxis_router)\n"
        "print(','.join(loaded), 'PaxisError' in names, 'Router' in names)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["paxis_router,paxis_router.errors", "True", "False"]


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        paxis_router.Nope  # type: ignore[attr-defined]  # noqa: B018
