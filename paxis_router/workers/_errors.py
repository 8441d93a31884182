"""Helpers shared by the HTTP workers to classify and describe vendor errors."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from paxis_router.types import utc_now

if TYPE_CHECKING:
    from collections.abc import Mapping


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connection_gone(exc: BaseException) -> bool:
    """True for failures retrying will not heal: refused, DNS, TLS."""
    import socket
    import ssl

    for item in _chain(exc):
        if isinstance(item, ConnectionRefusedError | socket.gaierror | ssl.SSLError):
            return True
        text = str(item).lower()
        if "connection refused" in text or "name or service not known" in text:
            return True
        if "nodename nor servname" in text or "certificate verify failed" in text:
            return True
    return False


def root_message(exc: BaseException) -> str:
    chain = _chain(exc)
    return str(chain[-1]) or type(chain[-1]).__name__


def error_detail(exc: Any) -> str:  # Any: openai.APIStatusError
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", None) or exc)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utc_now()).total_seconds())
