"""The OpenAI-compatible endpoint: an ASGI app over Routers, with per-team API keys.

Needs the ``[proxy]`` extra (Starlette; ``paxis serve`` also uses uvicorn).

Example:
    >>> from paxis_router import Router
    >>> from paxis_router.testing import FakeWorker
    >>> key = new_key()
    >>> settings = ProxySettings(keys=[TeamKey(team="claims", key="sha256:" + hash_key(key))])
    >>> app = create_app(Router(tiers=[FakeWorker(["42"])]), settings)
"""

from __future__ import annotations

from paxis_router.proxy.app import create_app
from paxis_router.proxy.config import (
    AdminKey,
    ProxySettings,
    TeamKey,
    hash_key,
    load_proxy_settings,
    new_key,
)

__all__ = [
    "AdminKey",
    "ProxySettings",
    "TeamKey",
    "create_app",
    "hash_key",
    "load_proxy_settings",
    "new_key",
]
