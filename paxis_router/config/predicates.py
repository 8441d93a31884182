"""Predicates in YAML form -> predicates (``paxis_router.policy.predicates``).

A predicate is a name (``verdict_failed``), a one-key mapping with an argument
(``{confidence_below: 0.7}``, ``{spent_over: "0.05"}``, ``{score_below: {...}}`` for a learned
scorer) or a combinator (``{any_of: [...]}``, ``{all_of: [...]}``, ``{not: ...}``). Errors name
the file and the field path.

Example:
    >>> from paxis_router.testing import make_state
    >>> predicate = parse_predicate({"any_of": ["verdict_failed", {"confidence_below": 0.7}]})
    >>> predicate(make_state(passed=True, confidence=0.9)), predicate(make_state(passed=False))
    (False, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import InvalidOperation
from typing import Any

from paxis_router.calibration.thresholds import score_below_from_spec
from paxis_router.errors import ConfigError
from paxis_router.policy.predicates import (
    Predicate,
    all_of,
    any_of,
    confidence_below,
    never,
    not_,
    price_unknown,
    spent_over,
    tiers_exhausted,
    verdict_failed,
)

_NO_ARG: dict[str, Callable[[], Predicate]] = {
    "verdict_failed": verdict_failed,
    "tiers_exhausted": tiers_exhausted,
    "never": never,
    "price_unknown": price_unknown,
}


_ONE_ARG: dict[str, Callable[[Any], Predicate]] = {
    "confidence_below": lambda v: confidence_below(float(v)),
    "spent_over": spent_over,
    "score_below": score_below_from_spec,  # a learned scorer: calibration
}
_COMBINATORS: dict[str, Callable[..., Predicate]] = {"any_of": any_of, "all_of": all_of}

PREDICATE_NAMES = tuple(sorted([*_NO_ARG, *_ONE_ARG, *_COMBINATORS, "not"]))


def parse_predicate(spec: object, *, source: str | None = None, field: str = "") -> Predicate:
    """Build a predicate from its YAML form; errors name ``source`` and the field path."""
    if isinstance(spec, str):
        if spec in _NO_ARG:
            return _NO_ARG[spec]()
        raise ConfigError(
            f"unknown predicate {spec!r}; expected one of {', '.join(PREDICATE_NAMES)}",
            source=source,
            field=field,
        )
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((name, arg),) = spec.items()
        path = f"{field}.{name}" if field else str(name)
        if name in _COMBINATORS:
            if not isinstance(arg, Sequence) or isinstance(arg, str) or not arg:
                raise ConfigError(f"{name} takes a non-empty list", source=source, field=path)
            inner = [
                parse_predicate(item, source=source, field=f"{path}[{i}]")
                for i, item in enumerate(arg)
            ]
            return _COMBINATORS[name](*inner)
        if name == "not":
            return not_(parse_predicate(arg, source=source, field=path))
        if name in _ONE_ARG:
            try:
                return _ONE_ARG[name](arg)
            except (ValueError, TypeError, InvalidOperation) as exc:
                raise ConfigError(
                    f"bad argument {arg!r}: {exc}", source=source, field=path
                ) from exc
        raise ConfigError(
            f"unknown predicate {name!r}; expected one of {', '.join(PREDICATE_NAMES)}",
            source=source,
            field=path,
        )
    raise ConfigError(
        f"a predicate is a name or a one-key mapping, got {spec!r}", source=source, field=field
    )
