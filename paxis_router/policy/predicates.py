"""Escalation policy: pure predicates over a RouteState.

A predicate is a plain ``Callable[[RouteState], bool]``: sync, pure, no I/O. Combine them with
``any_of`` / ``all_of`` / ``not_``, or write them in YAML::

    escalate_when: {any_of: [verdict_failed, {confidence_below: 0.7}]}
    stop_when: {any_of: [tiers_exhausted, {spent_over: "0.05"}]}

Example:
    >>> from paxis_router.testing import make_state
    >>> policy = EscalationPolicy(escalate_when=any_of(verdict_failed(), confidence_below(0.7)))
    >>> policy.escalate_when(make_state(passed=False))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from paxis_router.types import Attempt, ChatRequest, Verdict

Predicate = Callable[["RouteState"], bool]


@dataclass(frozen=True, slots=True)
class RouteState:
    """Everything a policy may read after an attempt.

    ``tier_index`` is the index of the tier just tried; ``n_tiers`` the ladder's length.
    ``spent_usd`` sums the attempts whose price is known; ``unpriced_attempts`` counts the others
    (so ``spent_usd`` is a lower bound whenever that count is not 0). ``budget_exhausted``,
    ``budget_refuses`` and ``outage_mode`` carry the team budget and the outage rule into the
    route's decision (``paxis_router.policy.decide``).
    """

    request: ChatRequest
    attempts: tuple[Attempt, ...]
    tier_index: int
    n_tiers: int
    spent_usd: Decimal
    skills: tuple[str, ...] = ()
    unpriced_attempts: int = 0
    budget_exhausted: str | None = None  # the team's spent budget, described; None: room left
    budget_refuses: bool = False  # that budget refuses (rather than caps) escalation
    outage_mode: Literal["degrade", "refuse"] = "degrade"  # for this request's skills

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        last = self.last
        return last.verdicts if last else ()

    @property
    def confidence(self) -> float | None:
        """The last answer's confidence: the lowest verifier score when any verifier scored it,
        else exp(mean token logprob) when the backend returned logprobs, else None (unknown)."""
        scores = [v.score for v in self.verdicts if v.score is not None]
        if scores:
            return min(scores)
        last = self.last
        if last is not None and last.completion is not None:
            return last.completion.mean_token_prob
        return None


def verdict_failed() -> Predicate:
    """True when the last call failed or any verifier rejected its answer."""

    def predicate(state: RouteState) -> bool:
        last = state.last
        return last is None or not last.passed

    predicate.__name__ = "verdict_failed"
    return predicate


def confidence_below(threshold: float) -> Predicate:
    """True when the last answer's confidence is known and below ``threshold``.

    A confidence that is not a probability (NaN, infinite, outside [0, 1]), from any verifier's
    score, counts as below every threshold: a broken score never lets an answer through.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence_below threshold must be in [0, 1], got {threshold}")

    def predicate(state: RouteState) -> bool:
        if any(v.score is not None and not _probability(v.score) for v in state.verdicts):
            return True
        confidence = state.confidence
        if confidence is None:
            return False
        return not _probability(confidence) or confidence < threshold

    predicate.__name__ = f"confidence_below({threshold})"
    return predicate


def _probability(value: float) -> bool:
    """True for a finite number in [0, 1]."""
    return math.isfinite(value) and 0.0 <= value <= 1.0


def spent_over(limit_usd: Decimal | str | float) -> Predicate:
    """True when the route's known spend exceeds ``limit_usd``.

    Attempts with an unknown price count as 0 here (their spend is a lower bound); use
    ``any_of(spent_over(x), price_unknown())`` to stop on unknown prices too.
    """
    limit = Decimal(str(limit_usd))

    def predicate(state: RouteState) -> bool:
        return state.spent_usd > limit

    predicate.__name__ = f"spent_over({limit})"
    return predicate


def tiers_exhausted() -> Predicate:
    """True when the tier just tried was the ladder's last."""

    def predicate(state: RouteState) -> bool:
        return state.tier_index >= state.n_tiers - 1

    predicate.__name__ = "tiers_exhausted"
    return predicate


def price_unknown() -> Predicate:
    """True when any attempt so far has an unknown price."""

    def predicate(state: RouteState) -> bool:
        return state.unpriced_attempts > 0

    predicate.__name__ = "price_unknown"
    return predicate


def never() -> Predicate:
    """Always False."""

    def predicate(state: RouteState) -> bool:
        return False

    predicate.__name__ = "never"
    return predicate


def any_of(*predicates: Predicate) -> Predicate:
    """True when any of ``predicates`` is."""

    def predicate(state: RouteState) -> bool:
        return any(p(state) for p in predicates)

    predicate.__name__ = "any_of(" + ", ".join(p.__name__ for p in predicates) + ")"
    return predicate


def all_of(*predicates: Predicate) -> Predicate:
    """True when every one of ``predicates`` is."""

    def predicate(state: RouteState) -> bool:
        return all(p(state) for p in predicates)

    predicate.__name__ = "all_of(" + ", ".join(p.__name__ for p in predicates) + ")"
    return predicate


def not_(inner: Predicate) -> Predicate:
    """True when ``inner`` is False."""

    def predicate(state: RouteState) -> bool:
        return not inner(state)

    predicate.__name__ = f"not({inner.__name__})"
    return predicate


OnExhausted = Literal["raise", "return_best"]


@dataclass(frozen=True)
class EscalationPolicy:
    """When to escalate and when to stop.

    After each attempt the router escalates when ``escalate_when`` holds, unless ``stop_when``
    holds too. A failed call (an exception) always escalates while tiers remain.
    ``on_exhausted`` decides what happens when the ladder ends on a rejected answer: ``raise``
    EscalationExhausted, or ``return_best`` — return the answer that passed the most verifiers
    (the latest on a tie), marked ``accepted=False``.
    """

    escalate_when: Predicate = field(
        default_factory=lambda: any_of(verdict_failed(), confidence_below(0.7))
    )
    stop_when: Predicate = field(
        default_factory=lambda: any_of(tiers_exhausted(), spent_over(Decimal("0.05")))
    )
    on_exhausted: OnExhausted = "raise"

    @classmethod
    def coerce(cls, value: EscalationPolicy | float | Predicate | None) -> EscalationPolicy:
        """``0.7`` ≡ ``EscalationPolicy(any_of(verdict_failed(), confidence_below(0.7)))``;
        a predicate becomes ``escalate_when``; None gives the default policy."""
        if value is None:
            return cls()
        if isinstance(value, EscalationPolicy):
            return value
        if isinstance(value, int | float):
            return cls(escalate_when=any_of(verdict_failed(), confidence_below(float(value))))
        return cls(escalate_when=value)
