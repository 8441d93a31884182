from __future__ import annotations

import paxis_router


def test_all_is_sorted_and_complete() -> None:
    exported = paxis_router.__all__
    assert exported == sorted(exported)
    public = {
        name
        for name, value in vars(paxis_router).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("paxis_router")
        and not isinstance(value, type(paxis_router))
    }
    assert public == set(exported)


def test_every_export_resolves() -> None:
    for name in paxis_router.__all__:
        assert getattr(paxis_router, name) is not None, name
