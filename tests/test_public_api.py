from __future__ import annotations

import subprocess
import sys

import pytest

import paxis_router


def test_all_is_sorted_and_unique() -> None:
    exported = paxis_router.__all__
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)


def test_every_export_resolves_to_a_paxis_object() -> None:
    for name in paxis_router.__all__:
        value = getattr(paxis_router, name)
        assert getattr(value, "__module__", "").startswith("paxis_router"), name


def test_all_lists_exactly_the_lazy_and_eager_names() -> None:
    eager = {
        name
        for name, value in vars(paxis_router).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert set(paxis_router._LAZY) | eager == set(paxis_router.__all__)
    assert set(paxis_router._LAZY).isdisjoint(eager)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        paxis_router.Nope  # noqa: B018


def test_import_loads_only_the_exceptions() -> None:
    code = (
        "import sys, paxis_router\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('paxis_router'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "paxis_router,paxis_router.errors"
