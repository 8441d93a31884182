"""The router with real verifiers and FakeWorkers at the model seam, ledger in real SQLite."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
from pydantic import TypeAdapter

from paxis_router import ChatRequest, Completion, Decision, Router, SQLiteLedger, TokenPrice
from paxis_router.config.verifiers import VerifierSpec, build_verifier
from paxis_router.testing import FakeWorker
from paxis_router.verifiers import ArithmeticVerifier, LogprobConfidenceVerifier, NonEmptyVerifier

if TYPE_CHECKING:
    from pathlib import Path

QUESTION = ChatRequest.from_text("Janet sells 16 - 3 - 4 eggs at $2 each. How much?", team="demo")
WRONG = "She has 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * $2 = $<<9*2=20>>20.\n#### 20"
RIGHT = "She has 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * $2 = $<<9*2=18>>18.\n#### 18"


def ladder(local_answer: str | Completion, ledger: SQLiteLedger, *verifiers: object) -> Router:
    return Router(
        tiers=[
            FakeWorker(
                [local_answer], name="local:worker", price=TokenPrice.per_million("0.1", "0.1")
            ),
            FakeWorker([RIGHT], name="frontier:top", price=TokenPrice.per_million("10", "30")),
        ],
        verifiers=list(verifiers),  # type: ignore[arg-type]
        ledger=ledger,
    )


async def test_wrong_arithmetic_escalates(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        result = await ladder(WRONG, ledger, ArithmeticVerifier()).route(QUESTION)
        rows = ledger.rows()
    assert (result.tier, result.content, result.escalated) == ("frontier:top", RIGHT, True)
    assert [(r.tier, r.decision, r.passed) for r in rows] == [
        ("local:worker", Decision.ESCALATE, False),
        ("frontier:top", Decision.ACCEPT, True),
    ]
    (verdict,) = rows[0].verdicts
    assert verdict.verifier == "arithmetic"
    assert verdict.score == 0.5
    assert "'9 * $2 = $20' (left side is 18)" in verdict.reason
    assert "arithmetic failed" in rows[0].reason


async def test_right_arithmetic_is_accepted_locally(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        result = await ladder(RIGHT, ledger, ArithmeticVerifier()).route(QUESTION)
        rows = ledger.rows()
    assert (result.tier, result.escalated, result.decision) == (
        "local:worker",
        False,
        Decision.ACCEPT,
    )
    assert len(rows) == 1
    assert rows[0].verdicts[0].score == 1.0
    assert rows[0].verdicts[0].reason == "4 calculation(s) right, final answer 18"


async def test_missing_final_answer_escalates(tmp_path: Path) -> None:
    truncated = "She has 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * $2 = $"
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        result = await ladder(truncated, ledger, ArithmeticVerifier()).route(QUESTION)
        rows = ledger.rows()
    assert result.tier == "frontier:top"
    assert "no final answer" in rows[0].verdicts[0].reason


async def test_verifiers_built_from_yaml_specs(tmp_path: Path) -> None:
    specs = TypeAdapter(list[VerifierSpec]).validate_python(
        ["non_empty", {"kind": "all_of", "verifiers": ["arithmetic"], "name": "math"}]
    )
    verifiers = [build_verifier(spec, tmp_path) for spec in specs]
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        result = await ladder(WRONG, ledger, *verifiers).route(QUESTION)
        rows = ledger.rows()
    assert result.tier == "frontier:top"
    assert [(v.verifier, v.passed) for v in rows[0].verdicts] == [
        ("non_empty", True),
        ("math", False),
    ]


async def test_low_logprob_confidence_escalates_and_truncation_fails(tmp_path: Path) -> None:
    unsure = Completion(RIGHT, "local", token_logprobs=(math.log(0.4),) * 5, finish_reason="stop")
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        router = ladder(
            unsure,
            ledger,
            LogprobConfidenceVerifier(min_mean_prob=0.8, missing="pass"),
            NonEmptyVerifier(),
        )
        result = await router.route(QUESTION)
        rows = ledger.rows()
    assert result.tier == "frontier:top"
    verdicts = {v.verifier: v for v in rows[0].verdicts}
    assert verdicts["logprob_confidence"].passed is False
    assert verdicts["logprob_confidence"].score == pytest.approx(0.4)
    assert verdicts["non_empty"].passed is True
