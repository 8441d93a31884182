"""Route from synchronous framework code, also when the calling thread runs an event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest, RouteResult


def route_blocking(router: Router, request: ChatRequest) -> RouteResult:
    """``router.route_sync(request)``: it runs on the shared background loop, so it works from a
    thread with a running loop too and reuses the workers' connections between calls."""
    return router.route_sync(request)
