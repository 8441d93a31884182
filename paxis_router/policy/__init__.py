"""Pure routing decisions: predicates over a ``RouteState`` and the escalation policy.

Nothing here does I/O or imports anything but ``paxis_router.types`` and ``paxis_router.errors``.
"""

from __future__ import annotations
