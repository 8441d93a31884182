"""CallableVerifier: a plain Python function as a verifier."""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError
from paxis_router.types import Verdict

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion

VerifyResult = bool | float | Verdict
VerifyFunction = Callable[["ChatRequest", "Completion"], VerifyResult | Awaitable[VerifyResult]]


class CallableVerifier:
    """Adapts ``fn(request, completion) -> bool | float | Verdict`` (sync or async) to a Verifier.

    ``fn`` is a callable or a dotted path (``"package.module:function"`` or
    ``"package.module.function"``), imported at construction; a bad path raises ConfigError
    naming it. A bool is the verdict; a float is a score in [0, 1] that passes at
    ``threshold``; a Verdict is taken as is (renamed to this verifier). Exceptions from ``fn``
    propagate: the router turns them into a failed verdict.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> v = CallableVerifier(lambda req, c: "42" in c.content, name="has_42")
        >>> asyncio.run(v.verify(ChatRequest.from_text("6*7?"), Completion("42", "m"))).passed
        True
    """

    def __init__(
        self, fn: VerifyFunction | str, *, name: str | None = None, threshold: float = 0.5
    ):
        if isinstance(fn, str):
            path = fn
            fn = import_callable(path)
        else:
            path = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        if not callable(fn):
            raise ConfigError(f"{path!r} is not callable")
        self.fn = fn
        self.name = name or f"python:{path}"
        self.threshold = threshold

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        out = self.fn(request, completion)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, Verdict):
            return Verdict(self.name, out.passed, out.score, out.reason)
        if isinstance(out, bool):
            return Verdict(self.name, out, None, "function returned " + str(out))
        if isinstance(out, int | float) and math.isfinite(out):
            score = float(out)
            passed = score >= self.threshold
            relation = ">=" if passed else "<"
            return Verdict(
                self.name, passed, score, f"score {score:.3f} {relation} {self.threshold}"
            )
        return Verdict(
            self.name,
            False,
            None,
            f"function returned {type(out).__name__} {out!r}; expected bool, float or Verdict",
        )


def import_callable(path: str) -> VerifyFunction:
    """Import ``"package.module:function"`` or ``"package.module.function"`` (attributes may be
    nested: ``"pkg.mod:Class.method"``); ConfigError names the path when it cannot.

    Example:
        >>> import_callable("math:isclose").__name__
        'isclose'
    """
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ConfigError(
            f"bad dotted path {path!r}: write 'package.module:function' or "
            "'package.module.function'"
        )
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} of verifier {path!r}: {exc}; check the path "
            "and that the module is installed or on PYTHONPATH"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(
                f"verifier {path!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from exc
    if not callable(target):
        raise ConfigError(f"verifier {path!r} is a {type(target).__name__}, not a function")
    return target
