"""Policy files: YAML -> validated ``RouterConfig`` -> a Router. Only the faces import this."""

from __future__ import annotations
