"""Writing a command's results to stdout (the library itself never prints)."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any


def emit(text: str = "") -> None:
    """Write one line to stdout."""
    sys.stdout.write(f"{text}\n")


def _default(value: Any) -> Any:  # Any: json.dumps' default hook
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(obj: Any) -> None:  # Any: any JSON-serialisable value
    """Write ``obj`` as JSON (Decimal as a string) to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")
