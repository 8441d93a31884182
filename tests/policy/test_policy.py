from __future__ import annotations

from decimal import Decimal

import pytest

from paxis_router.config.predicates import parse_predicate
from paxis_router.errors import ConfigError
from paxis_router.policy.predicates import (
    EscalationPolicy,
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
from paxis_router.testing import make_state
from paxis_router.types import ChatRequest, Completion, Usage

S = make_state


@pytest.mark.parametrize(
    ("predicate", "state", "expected"),
    [
        (verdict_failed(), S(passed=True), False),
        (verdict_failed(), S(passed=False), True),
        (verdict_failed(), S(error=True), True),
        (confidence_below(0.7), S(confidence=0.69), True),
        (confidence_below(0.7), S(confidence=0.7), False),
        (confidence_below(0.7), S(confidence=None), False),
        (confidence_below(0.7), S(error=True), False),
        (spent_over("0.05"), S(spent_usd="0.05"), False),
        (spent_over("0.05"), S(spent_usd="0.0501"), True),
        (spent_over("0.05"), S(spent_usd=None), False),
        (price_unknown(), S(spent_usd=None), True),
        (price_unknown(), S(spent_usd="0"), False),
        (tiers_exhausted(), S(tier_index=0, n_tiers=3), False),
        (tiers_exhausted(), S(tier_index=1, n_tiers=3), False),
        (tiers_exhausted(), S(tier_index=2, n_tiers=3), True),
        (never(), S(passed=False), False),
        (any_of(verdict_failed(), confidence_below(0.5)), S(confidence=0.4), True),
        (any_of(verdict_failed(), confidence_below(0.5)), S(confidence=0.6), False),
        (all_of(verdict_failed(), confidence_below(0.5)), S(passed=False, confidence=0.4), True),
        (all_of(verdict_failed(), confidence_below(0.5)), S(passed=True, confidence=0.4), False),
        (not_(verdict_failed()), S(passed=True), True),
    ],
)
def test_predicate_table(predicate: Predicate, state: object, expected: bool) -> None:
    assert predicate(state) is expected  # type: ignore[arg-type]


def test_confidence_falls_back_to_token_logprobs() -> None:
    state = S(passed=True)
    completion = Completion("x", "m", Usage(1, 2), token_logprobs=(-0.1, -2.0))
    attempt = state.attempts[0]
    from dataclasses import replace

    state = replace(state, attempts=(replace(attempt, completion=completion, verdicts=()),))
    assert state.confidence == pytest.approx(0.3499, abs=1e-3)
    assert confidence_below(0.5)(state) is True


def test_confidence_threshold_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        confidence_below(1.5)


@pytest.mark.parametrize(
    ("spec", "state", "expected"),
    [
        ("verdict_failed", S(passed=False), True),
        ({"confidence_below": 0.7}, S(confidence=0.2), True),
        ({"any_of": ["verdict_failed", {"confidence_below": 0.7}]}, S(confidence=0.9), False),
        ({"all_of": ["tiers_exhausted", {"spent_over": "0.01"}]}, S(tier_index=1), False),
        ({"not": "verdict_failed"}, S(passed=False), False),
    ],
)
def test_parse_predicate_from_yaml_shapes(spec: object, state: object, expected: bool) -> None:
    assert parse_predicate(spec)(state) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("verdict_fail", r"policy\.yaml: escalate_when: unknown predicate 'verdict_fail'"),
        ({"any_of": "verdict_failed"}, r"escalate_when\.any_of: any_of takes a non-empty list"),
        ({"any_of": ["x"]}, r"escalate_when\.any_of\[0\]: unknown predicate 'x'"),
        ({"confidence_below": "high"}, r"escalate_when\.confidence_below: bad argument 'high'"),
        ({"spent_over": "lots"}, r"escalate_when\.spent_over: bad argument"),
        ({"a": 1, "b": 2}, r"a name or a one-key mapping"),
        (42, r"a name or a one-key mapping"),
    ],
)
def test_parse_predicate_errors_name_file_and_field(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_predicate(spec, source="policy.yaml", field="escalate_when")


def test_policy_coerce_accepts_a_threshold() -> None:
    policy = EscalationPolicy.coerce(0.9)
    assert policy.escalate_when(S(confidence=0.8)) is True
    assert policy.escalate_when(S(confidence=0.95)) is False
    assert EscalationPolicy.coerce(None).on_exhausted == "raise"
    assert EscalationPolicy.coerce(never()).escalate_when(S(passed=False)) is False


def test_default_policy_stops_when_spent_over_five_cents() -> None:
    policy = EscalationPolicy()
    assert policy.stop_when(S(spent_usd=Decimal("0.06"), tier_index=0, n_tiers=3)) is True
    assert policy.stop_when(S(spent_usd=Decimal("0.01"), tier_index=0, n_tiers=3)) is False


def test_request_query_is_last_user_message() -> None:
    request = ChatRequest.from_text("first").with_system("sys")
    assert request.messages[0].role == "system"
    assert request.query == "first"
    merged = request.with_system("more")
    assert merged.messages[0].content == "more\n\nsys"
    assert len(merged.messages) == 2
