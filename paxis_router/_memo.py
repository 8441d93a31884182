"""Remember a value computed from an immutable object, for as long as that object lives.

Requests are rebuilt on every step of an agent, but most of what they hold is the same objects
step after step: the tools offered, the conversation's earlier messages. What is derived from
such an object (a tool's texts, a message's JSON) is computed once per object and forgotten when
the object goes. Keyed by identity, so the objects need not be hashable (pydantic models holding
dicts are not); a weak reference tells a live object from a new one at a reused address.

Example:
    >>> class Box:
    ...     def __init__(self, items): self.items = items
    >>> sizes = IdentityMemo(lambda box: len(box.items))
    >>> box = Box([1, 2, 3])
    >>> sizes(box), sizes(box), len(sizes)
    (3, 3, 1)
    >>> del box
    >>> len(sizes)
    0
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

K = TypeVar("K")
V = TypeVar("V")


class IdentityMemo(Generic[K, V]):
    """``compute(obj)``, once per live object (see the module docstring)."""

    __slots__ = ("_compute", "_entries")

    def __init__(self, compute: Callable[[K], V]) -> None:
        self._compute = compute
        self._entries: dict[int, tuple[weakref.ref[K], V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __call__(self, obj: K) -> V:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        value = self._compute(obj)
        self._entries[key] = (weakref.ref(obj, self._forgetter(key)), value)
        return value

    def _forgetter(self, key: int) -> Callable[[weakref.ref[K]], None]:
        entries = self._entries

        def forget(ref: weakref.ref[K]) -> None:
            entry = entries.get(key)
            if entry is not None and entry[0] is ref:  # not a newer object at the same address
                del entries[key]

        return forget
