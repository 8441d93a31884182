"""Policy files: YAML -> validated ``RouterConfig`` -> a Router. Only the faces import this.

Example:
    >>> cfg = RouterConfig.model_validate({"tiers": [{"kind": "litellm", "model": "gpt-4o"}]})
    >>> [t.name for t in build_router(cfg).tiers]
    ['frontier:gpt-4o']
"""

from __future__ import annotations

from paxis_router.config.schema import RouterConfig, build_router, load_config

__all__ = ["RouterConfig", "build_router", "load_config"]
