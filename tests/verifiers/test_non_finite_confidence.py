"""Logprobs and scores that are not probabilities count as failure, and nothing raises.

A backend that returns NaN, infinite or positive logprobs (or a verifier that scores NaN) must
not let a wrong answer through, nor crash the route after the paid call (which would leave no
ledger row).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from paxis_router import Router, SQLiteLedger
from paxis_router.policy.predicates import confidence_below
from paxis_router.testing import FakeVerifier, FakeWorker, make_state
from paxis_router.types import ChatRequest, Completion, Usage, Verdict
from paxis_router.verifiers.logprob import LogprobConfidenceVerifier

NAN, INF = math.nan, math.inf
REQUEST = ChatRequest.from_text("6*7?")


def _answer(*logprobs: float) -> Completion:
    return Completion("42", "m", Usage(3, 1), "stop", token_logprobs=logprobs)


@pytest.mark.parametrize(
    ("logprobs", "reason"),
    [
        ((NAN,), "token 0 has logprob nan"),
        ((-0.1, NAN, -0.1), "token 1 has logprob nan"),
        ((-INF,), "token 0 has logprob -inf"),
        ((INF,), "token 0 has logprob inf"),
        ((1000.0,), "token 0 has logprob 1000.0"),
        ((-0.01, 0.5), "token 1 has logprob 0.5"),
    ],
)
async def test_the_logprob_verifier_fails_logprobs_that_are_not_log_probabilities(
    logprobs: tuple[float, ...], reason: str
) -> None:
    verifier = LogprobConfidenceVerifier(min_mean_prob=0.5, min_token_prob=0.1)
    verdict = await verifier.verify(REQUEST, _answer(*logprobs))
    assert (verdict.passed, verdict.score) == (False, 0.0)
    assert verdict.reason.startswith(reason)
    assert "not a log-probability" in verdict.reason


@pytest.mark.parametrize(
    ("logprobs", "expected"),
    [
        ((0.0, -0.0), 1.0),
        ((math.log(0.5),), 0.5),
        ((-1e308, -1e308), 0.0),  # the sum overflows to -inf: probability 0, no error
        ((NAN,), 0.0),
        ((1000.0,), 0.0),  # exp(1000) would overflow
        ((-INF,), 0.0),
        ((0.1,), 0.0),
    ],
)
def test_mean_token_prob_is_a_probability_or_zero(
    logprobs: tuple[float, ...], expected: float
) -> None:
    assert _answer(*logprobs).mean_token_prob == pytest.approx(expected)


@pytest.mark.parametrize(
    ("score", "below"),
    [
        (0.69, True),
        (0.7, False),
        (1.0, False),
        (NAN, True),
        (INF, True),
        (-INF, True),
        (-0.1, True),
        (1.5, True),
    ],
)
def test_confidence_below_counts_a_broken_score_as_too_low(score: float, below: bool) -> None:
    assert confidence_below(0.7)(make_state(confidence=score)) is below


def test_a_nan_score_cannot_hide_behind_a_good_one() -> None:
    state = make_state(confidence=0.9)
    last = state.attempts[-1]
    verdicts = (*last.verdicts, Verdict("broken", True, NAN, ""))
    state = replace(state, attempts=(replace(last, verdicts=verdicts),))
    assert confidence_below(0.7)(state) is True


@pytest.mark.parametrize("threshold", [NAN, -0.1, 1.1])
def test_a_threshold_that_is_not_a_probability_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold must be in"):
        confidence_below(threshold)


@pytest.mark.parametrize("logprobs", [(1000.0,), (NAN,), (INF,)], ids=["1000", "nan", "inf"])
async def test_the_route_escalates_and_records_every_attempt(
    logprobs: tuple[float, ...], tmp_path: Path
) -> None:
    local = FakeWorker([_answer(*logprobs)], name="local:w")
    top = FakeWorker(["42"], name="frontier:f")
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(tiers=[local, top], policy=0.7, ledger=ledger)
    result = await router.route(REQUEST)
    rows = ledger.rows()
    ledger.close()
    assert result.tier == "frontier:f"
    assert [(r.tier, r.decision.value) for r in rows] == [
        ("local:w", "escalate"),
        ("frontier:f", "accept"),
    ]
    assert rows[0].reason == "escalate: confidence 0.000 too low"


async def test_the_logprob_verifier_in_a_route_names_the_bad_token(tmp_path: Path) -> None:
    local = FakeWorker([_answer(-0.1, NAN)], name="local:w")
    top = FakeWorker(["42"], name="frontier:f")
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(
        tiers=[local, top],
        verifiers=[LogprobConfidenceVerifier(missing="pass"), FakeVerifier([True])],
        ledger=ledger,
    )
    result = await router.route(REQUEST)
    rows = ledger.rows()
    ledger.close()
    assert result.tier == "frontier:f"
    assert "logprob_confidence failed (token 1 has logprob nan" in rows[0].reason
