"""The route's decision as one pure function of its state: escalation, budget, outage."""

from __future__ import annotations

import doctest
from decimal import Decimal

import pytest

from paxis_router.policy import decide as decide_module
from paxis_router.policy.decide import Decided, Ending, decide
from paxis_router.policy.predicates import (
    EscalationPolicy,
    spent_over,
    tiers_exhausted,
    verdict_failed,
)
from paxis_router.testing import make_attempt, make_state
from paxis_router.types import Attempt, Decision

RAISE = EscalationPolicy(escalate_when=verdict_failed(), stop_when=tiers_exhausted())
BEST = EscalationPolicy(verdict_failed(), tiers_exhausted(), "return_best")

ok0 = make_attempt(tier_index=0, passed=True)
bad0 = make_attempt(tier_index=0, passed=False)
bad1 = make_attempt(tier_index=1, passed=False)
ok1 = make_attempt(tier_index=1, passed=True)
down1 = make_attempt(tier_index=1, status="unavailable")
down0 = make_attempt(tier_index=0, status="unavailable")
fail1 = make_attempt(tier_index=1, status="failed")
denied0 = make_attempt(tier_index=0, status="denied")
denied1 = make_attempt(tier_index=1, status="denied")


@pytest.mark.parametrize(
    ("attempts", "policy", "extra", "expected"),
    [
        # accept, escalate, plain ends
        ((ok0,), RAISE, {}, (Decision.ACCEPT, Ending.ANSWER, 0)),
        ((bad0,), RAISE, {}, (Decision.ESCALATE, None, None)),
        ((bad0, ok1), RAISE, {}, (Decision.ACCEPT, Ending.ANSWER, 1)),
        ((bad0, bad1), RAISE, {}, (Decision.STOP, Ending.EXHAUSTED, None)),
        ((bad0, bad1), BEST, {}, (Decision.STOP, Ending.BEST_EFFORT, 1)),
        ((down0,), RAISE, {}, (Decision.ESCALATE, None, None)),
        ((bad0, fail1), RAISE, {}, (Decision.STOP, Ending.EXHAUSTED, None)),
        ((bad0, fail1), BEST, {}, (Decision.STOP, Ending.BEST_EFFORT, 0)),
        # outage: an upper tier down above the best answer
        ((bad0, down1), RAISE, {}, (Decision.STOP, Ending.DEGRADED, 0)),
        (
            (bad0, down1),
            RAISE,
            {"outage_mode": "refuse"},
            (Decision.STOP, Ending.DEGRADED_REFUSED, None),
        ),
        ((down0, down1), RAISE, {}, (Decision.STOP, Ending.UNAVAILABLE, None)),
        ((denied0, down1), RAISE, {}, (Decision.STOP, Ending.UNAVAILABLE, None)),
        # the gate
        ((denied0, denied1), RAISE, {}, (Decision.STOP, Ending.DENIED, None)),
        ((bad0, denied1), RAISE, {}, (Decision.STOP, Ending.EXHAUSTED, None)),
        ((bad0, denied1), BEST, {}, (Decision.STOP, Ending.BEST_EFFORT, 0)),
        # budgets: a spent budget turns an escalation into a stop
        (
            (bad0,),
            RAISE,
            {"budget_exhausted": "monthly $1"},
            (Decision.STOP, Ending.BUDGET_CAPPED, 0),
        ),
        (
            (bad0,),
            RAISE,
            {"budget_exhausted": "monthly $1", "budget_refuses": True},
            (Decision.STOP, Ending.BUDGET_REFUSED, None),
        ),
        # ... but never an accepted answer
        ((ok0,), RAISE, {"budget_exhausted": "monthly $1"}, (Decision.ACCEPT, Ending.ANSWER, 0)),
    ],
)
def test_decision_table(
    attempts: tuple[Attempt, ...],
    policy: EscalationPolicy,
    extra: dict[str, object],
    expected: tuple[Decision, Ending | None, int | None],
) -> None:
    state = make_state(attempts=attempts, n_tiers=2, **extra)  # type: ignore[arg-type]
    decided = decide(state, policy)
    assert (decided.decision, decided.ending, decided.answer_index) == expected
    assert decided.final is (decided.ending is not None)
    assert decided.budget_capped is ("budget_exhausted" in extra and not attempts[-1].passed)


def test_reasons_name_the_cause() -> None:
    assert decide(make_state(attempts=(bad0,)), RAISE).reason == "escalate: fake"
    failed = decide(make_state(attempts=(bad0, down1)), RAISE)
    assert failed.reason == "stop: WorkerUnavailable: scripted unavailable"
    capped = decide(make_state(attempts=(bad0,), budget_exhausted="monthly budget of $1"), RAISE)
    assert capped.reason == "stop: budget: monthly budget of $1"
    spent = EscalationPolicy(verdict_failed(), spent_over(Decimal("0.5")))
    stopped = decide(make_state(attempts=(bad0,), spent_usd="1"), spent)
    assert stopped.reason.startswith("stop: fake; spent_over")


def test_the_best_answer_is_the_one_most_verifiers_passed_latest_on_a_tie() -> None:
    state = make_state(attempts=(ok0, bad1), n_tiers=2)
    decided = decide(state, BEST)
    assert decided == Decided(Decision.STOP, decided.reason, Ending.BEST_EFFORT, 0)
    tie = decide(make_state(attempts=(bad0, bad1), n_tiers=2), BEST)
    assert tie.answer_index == 1


def test_ending_says_whether_an_answer_is_returned() -> None:
    answering = {e for e in Ending if e.answers}
    assert answering == {Ending.ANSWER, Ending.DEGRADED, Ending.BUDGET_CAPPED, Ending.BEST_EFFORT}


def test_decide_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        decide(make_state(attempts=()), RAISE)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(decide_module)
    assert result.attempted > 0
    assert result.failed == 0
