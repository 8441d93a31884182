"""The route's decision after each attempt: one pure function of the route state.

``decide(state, policy)`` folds the escalation policy, the team budget and the outage rule
into one answer: go on (``escalate``), or end, and how the route ends (``Ending``): with the
accepted answer, with the best answer so far (degraded, budget-capped or best effort), or with
an error the router raises. The router only carries it out; every rule is here, tested as a
table (tests/policy/test_decide.py).

Example:
    >>> from paxis_router.policy.predicates import EscalationPolicy
    >>> from paxis_router.testing import make_state
    >>> decided = decide(make_state(passed=True), EscalationPolicy())
    >>> decided.decision, decided.ending
    (<Decision.ACCEPT: 'accept'>, <Ending.ANSWER: 'answer'>)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxis_router.types import AttemptStatus, Decision

if TYPE_CHECKING:
    from paxis_router.policy.predicates import EscalationPolicy, RouteState
    from paxis_router.types import Attempt


class Ending(enum.StrEnum):
    """How a route ends. The first four return an answer; the others are raised as errors."""

    ANSWER = "answer"  # the last attempt's answer, accepted
    DEGRADED = "degraded"  # an upper tier could not serve: the best lower answer, degraded
    BUDGET_CAPPED = "budget_capped"  # a spent budget stopped escalation: the best answer so far
    BEST_EFFORT = "best_effort"  # the ladder ran out, policy says return_best
    EXHAUSTED = "exhausted"  # EscalationExhausted: no acceptable answer
    DENIED = "denied"  # PolicyDenied: the gate denied every tier
    UNAVAILABLE = "unavailable"  # TiersUnavailable: nothing answered and a tier was down
    DEGRADED_REFUSED = "degraded_refused"  # DegradedRefused: the outage policy refuses
    BUDGET_REFUSED = "budget_refused"  # BudgetExceeded: the budget refuses escalation
    CANCELLED = "cancelled"  # the caller cancelled the route (its last attempt is recorded)

    @property
    def answers(self) -> bool:
        """True when the route returns an answer (possibly not accepted)."""
        return self in _ANSWERING


_ANSWERING = frozenset({Ending.ANSWER, Ending.DEGRADED, Ending.BUDGET_CAPPED, Ending.BEST_EFFORT})


@dataclass(frozen=True, slots=True)
class Decided:
    """What ``decide`` says after an attempt.

    ``ending`` is None while the route goes on (``decision`` is ``escalate``); ``answer_index``
    is the attempt whose answer the route returns when it ends with one; ``budget_capped`` says
    a spent team budget stopped an escalation (whether the budget then caps or refuses).
    """

    decision: Decision
    reason: str
    ending: Ending | None = None
    answer_index: int | None = None
    budget_capped: bool = False

    @property
    def final(self) -> bool:
        return self.ending is not None


def decide(state: RouteState, policy: EscalationPolicy) -> Decided:
    """The decision after ``state.last``: escalate, or end the route and how.

    Rules, in order: a failed call escalates while tiers remain and ``stop_when`` does not hold;
    an answer is accepted unless ``escalate_when`` holds; a spent team budget turns an escalation
    into a stop (the budget then refuses or keeps the answer so far). A stopped route ends with
    the best answer when an upper tier was unavailable (outage ``degrade``) or the budget capped
    it or the policy says ``return_best``; otherwise it raises (see ``Ending``).
    """
    last = state.last
    if last is None:
        raise ValueError("decide needs at least one attempt")
    decision, reason = _step(state, policy, last)
    capped = decision is Decision.ESCALATE and state.budget_exhausted is not None
    if capped:
        decision, reason = Decision.STOP, f"stop: budget: {state.budget_exhausted}"
    if decision is Decision.ESCALATE:
        return Decided(decision, reason)
    if decision is Decision.ACCEPT:
        return Decided(decision, reason, Ending.ANSWER, len(state.attempts) - 1)
    ending, answer = _ending(state, policy, capped)
    return Decided(decision, reason, ending, answer, capped)


def _step(state: RouteState, policy: EscalationPolicy, last: Attempt) -> tuple[Decision, str]:
    if last.completion is None:
        why = f"{last.error_type}: {last.error}"
        if state.tier_index >= state.n_tiers - 1 or policy.stop_when(state):
            return Decision.STOP, f"stop: {why}"
        return Decision.ESCALATE, f"escalate: {why}"
    if not policy.escalate_when(state):
        return Decision.ACCEPT, f"accept: {_describe_pass(state)}"
    why = _describe_failure(state)
    if policy.stop_when(state):
        return Decision.STOP, f"stop: {why}; {policy.stop_when.__name__}"
    return Decision.ESCALATE, f"escalate: {why}"


def _ending(state: RouteState, policy: EscalationPolicy, capped: bool) -> tuple[Ending, int | None]:
    attempts = state.attempts
    if capped and state.budget_refuses:
        return Ending.BUDGET_REFUSED, None
    answered = [i for i, a in enumerate(attempts) if a.completion is not None]
    if all(a.status is AttemptStatus.DENIED for a in attempts):
        return Ending.DENIED, None
    top = max((attempts[i].tier_index for i in answered), default=-1)
    down = any(a.status is AttemptStatus.UNAVAILABLE and a.tier_index > top for a in attempts)
    if down and not answered:
        return Ending.UNAVAILABLE, None
    if down and state.outage_mode == "refuse":
        return Ending.DEGRADED_REFUSED, None
    if not answered:
        return Ending.EXHAUSTED, None
    best = max(answered, key=lambda i: (sum(v.passed for v in attempts[i].verdicts), i))
    if down:
        return Ending.DEGRADED, best
    if capped:
        return Ending.BUDGET_CAPPED, best
    if policy.on_exhausted == "return_best":
        return Ending.BEST_EFFORT, best
    return Ending.EXHAUSTED, None


def _describe_pass(state: RouteState) -> str:
    n = len(state.verdicts)
    confidence = state.confidence
    text = f"{n} verifier(s) passed" if n else "no verifiers"
    if confidence is not None:
        text += f", confidence {confidence:.3f}"
    return text


def _describe_failure(state: RouteState) -> str:
    failed = [v for v in state.verdicts if not v.passed]
    if failed:
        return "; ".join(
            f"{v.verifier} failed ({v.reason})" if v.reason else v.verifier for v in failed
        )
    confidence = state.confidence
    if confidence is not None:
        return f"confidence {confidence:.3f} too low"
    return "policy asked to escalate"
