"""paxis_router: cheap workers first, frontier models only when the checks fail.

The public API is what ``__all__`` lists: the core path (a Router, its values, policies,
workers, verifiers, prices, the ledger, skills, governance, reports) and the exceptions a caller
catches; ``__init__.pyi`` beside this file names each one once, with the module that defines it.
Everything else is imported from its module (``paxis_router.governance.budgets``...).

Importing this package opens no socket, imports no heavy dependency and writes no environment
variable: the exceptions are loaded at once, every other public name on first use (PEP 562),
so ``import paxis_router`` stays fast and a program pays only for the parts it touches;
``from paxis_router import Router`` works as usual.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

__version__ = "0.1.0"


def _public_names() -> dict[str, str]:
    """Public name -> its module, read from the stub's ``from module import name as name``
    lines (a regular expression, not ``ast``: importing ``ast`` alone would cost more)."""
    stub = Path(__file__).with_suffix(".pyi").read_text(encoding="utf-8")
    return {
        name: module
        for module, names in re.findall(r"^from ([\w.]+) import (\([^)]*\)|.*)$", stub, re.M)
        for name in re.findall(r"(\w+) as \1\b", names)
    }


_LAZY = _public_names()
__all__ = sorted(_LAZY)
_errors = importlib.import_module("paxis_router.errors")
globals().update({n: getattr(_errors, n) for n, m in _LAZY.items() if m == _errors.__name__})


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paxis_router' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
