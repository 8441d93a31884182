"""Route from synchronous framework code, also when the calling thread runs an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest, RouteResult


def route_blocking(router: Router, request: ChatRequest) -> RouteResult:
    """``router.route_sync(request)``, moved to a worker thread when a loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return router.route_sync(request)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(router.route_sync, request).result()
