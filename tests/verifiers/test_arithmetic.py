from __future__ import annotations

from fractions import Fraction

import pytest

from paxis_router.types import ChatRequest, Completion
from paxis_router.verifiers.arithmetic import (
    ArithmeticVerifier,
    check_calculations,
    find_final_answer,
)

REQUEST = ChatRequest.from_text("How many eggs?")


async def verify(text: str, **kwargs: bool | float) -> tuple[bool, float | None, str]:
    verdict = await ArithmeticVerifier(**kwargs).verify(REQUEST, Completion(text, "m"))  # type: ignore[arg-type]
    assert verdict.verifier == "arithmetic"
    return verdict.passed, verdict.score, verdict.reason


def oks(text: str) -> list[tuple[str, bool]]:
    return [(c.text, c.ok) for c in check_calculations(text)]


# --- annotations ---------------------------------------------------------------------------------


async def test_right_annotations_pass_with_full_score() -> None:
    text = "She has 16 - 3 = <<16-3=13>>13 eggs.\nShe sells 9 * $2 = $<<9*2=18>>18.\n#### 18"
    passed, score, reason = await verify(text)
    assert (passed, score) == (True, 1.0)
    assert "4 calculation(s) right, final answer 18" in reason


async def test_wrong_annotation_fails_and_names_it() -> None:
    text = "He runs 3 x 60 = <<3*60=190>>190 meters.\n#### 190"
    passed, score, reason = await verify(text)
    assert not passed
    assert score == 0.0
    assert "<<3*60=190>>" in reason
    assert "left side is 180" in reason


def test_annotation_chain_checks_each_link() -> None:
    calcs = check_calculations("<<8*12+4=96+4=100>> and <<2+2=4=5>>")
    assert [c.ok for c in calcs] == [True, True, True, False]


def test_annotation_running_total_is_not_an_error() -> None:
    assert [c.ok for c in check_calculations("<<90/450=0.2*100=20>>")] == [True]


# --- plain statements ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 + 4 * 2 = 11", [("3 + 4 * 2 = 11", True)]),
        ("3 + 4 * 2 = 14", [("3 + 4 * 2 = 14", False)]),
        ("(3 + 4) * 2 = 14", [("(3 + 4) * 2 = 14", True)]),
        ("1,200 + 300 = 1,500", [("1,200 + 300 = 1,500", True)]),
        ("1,200 + 300 = 1,600", [("1,200 + 300 = 1,600", False)]),
        ("2.5 * 4 = 10.0", [("2.5 * 4 = 10.0", True)]),
        ("9 * $2 = $18", [("9 * $2 = $18", True)]),
        ("$10 + $15 = $26", [("$10 + $15 = $26", False)]),
        ("20% * 50 = 10", [("20% * 50 = 10", True)]),
        ("50/200 * 100 = 25%", [("50/200 * 100 = 25%", True)]),
        ("100 - 20% = 80", [("100 - 20% = 80", True)]),
        ("84 ÷ 4 = 21", [("84 ÷ 4 = 21", True)]),
        ("7 × 8 = 56", [("7 × 8 = 56", True)]),
        ("3 x 60 = 180", [("3 x 60 = 180", True)]),
        ("10 / 4 = 2.5", [("10 / 4 = 2.5", True)]),
        ("10 / 4 = 2", [("10 / 4 = 2", False)]),
        ("10 / 3 = 3.33", [("10 / 3 = 3.33", True)]),
        ("10 / 3 = 3.4", [("10 / 3 = 3.4", False)]),
        ("2 / 3 = 0.66", [("2 / 3 = 0.66", True)]),
        ("2 / 3 = 0.65", [("2 / 3 = 0.65", False)]),
        ("7 / 4 = 2", [("7 / 4 = 2", True)]),
        ("5 / 4 = 2", [("5 / 4 = 2", False)]),
        ("2^10 = 1024", [("2^10 = 1024", True)]),
        ("12.8 / 2/5 = 32", [("12.8 / 2/5 = 32", True)]),
        ("-3 + 5 = 2", [("-3 + 5 = 2", True)]),
        (r"\(3 \times 4 = 12\)", [("3  *  4 = 12", True)]),
        (r"16 \* 3/4 = 12", [("16 * 3/4 = 12", True)]),
        (r"\frac{3}{4} * 8 = 6", [("((3)/(4)) * 8 = 6", True)]),
    ],
)
def test_plain_statements(text: str, expected: list[tuple[str, bool]]) -> None:
    assert oks(text) == expected


def test_chain_checks_each_link() -> None:
    assert oks("2 + 1/2 = 5/2 = 2.5 = 3") == [
        ("2 + 1/2 = 5/2", True),
        ("5/2 = 2.5", True),
        ("2.5 = 3", False),
    ]


def test_running_total_in_a_chain_is_not_flagged() -> None:
    assert oks("5 + 3 = 8 * 2 = 16") == [("8 * 2 = 16", True)]


def test_division_by_zero_is_not_checked() -> None:
    assert oks("5 / 0 = 3") == []


def test_huge_powers_are_not_evaluated() -> None:
    assert oks("10^100000 = 1") == []


@pytest.mark.parametrize(
    "text",
    [
        "The meeting was on 2023-10-05 = a Thursday",
        "The ratio is 3:4 = 0.75",
        "At 10:30 = 2 hours later",
        "Dates like 10/05/2023 = 5",
        "Day 1 = 5 + 3",
        "He ran 3 hours * 2 = 6 miles",
        "She had 20 hours - 2 = 18",
        "240 * 100% = 40 * Total students",
        "10 = 100 - 9X",
        "2x + 3 = 11",
        "x = 5",
        "1 dozen = 12",
        "a == 3 + 4",
        "3 + 4 <= 10",
        "200 / 3 ≈ 66.67",
        "(4 hours) + 2 = 6",
        "The total (3 apples) + $5 = $15",
        "2 (3 + 4) = 14",
    ],
)
def test_near_misses_are_not_flagged(text: str) -> None:
    assert [c for c in check_calculations(text) if not c.ok] == []


def test_bullets_and_bold_are_not_operators() -> None:
    assert oks("- 5 + 3 = 8\n* 2 * 3 = 6\n**4 + 4 = 8**") == [
        ("5 + 3 = 8", True),
        ("2 * 3 = 6", True),
        ("4 + 4 = 8", True),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1) 5 + 3 = 9", [("5 + 3 = 9", False)]),
        ("(2) 5 + 3 = 8", [("5 + 3 = 8", True)]),
        ("2 * 4 = 9 (rounded)", [("2 * 4 = 9", False)]),
        ("2 * 4 = 8 (5 + 3 more)", [("2 * 4 = 8", True)]),
    ],
)
def test_enumerators_and_remarks_in_parentheses(
    text: str, expected: list[tuple[str, bool]]
) -> None:
    assert oks(text) == expected


def test_calculation_values_are_exact() -> None:
    (calc,) = check_calculations("1/3 + 1/6 = 0.5")
    assert (calc.lhs, calc.rhs, calc.ok) == (Fraction(1, 2), Fraction(1, 2), True)


# --- final answer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("work\n#### 42", "42"),
        ("#### $1,250.50", "1250.50"),
        ("The answer is 42.", "42"),
        ("The final answer is: $7", "7"),
        ("Answer: **-3**", "-3"),
        (r"so \boxed{18}", "18"),
        (r"\boxed{\$18}", "18"),
        ("#### 1\nThe answer is 2", "2"),
        ("So she has 9 eggs.", None),
        ("The answer is unclear.", None),
    ],
)
def test_find_final_answer(text: str, expected: str | None) -> None:
    assert find_final_answer(text) == expected


async def test_missing_final_answer_fails_even_with_right_arithmetic() -> None:
    passed, score, reason = await verify("16 - 3 = 13, 13 - 4 = 9 eggs.")
    assert not passed
    assert score == 1.0
    assert "no final answer" in reason


async def test_final_answer_can_be_optional() -> None:
    passed, score, reason = await verify("16 - 3 = 13.", require_final_answer=False)
    assert (passed, score, reason) == (True, 1.0, "1 calculation(s) right")


async def test_no_calculations_has_no_score() -> None:
    passed, score, reason = await verify("I just know it.\n#### 7")
    assert (passed, score, reason) == (True, None, "no calculations to check, final answer 7")


async def test_score_is_share_of_right_calculations_and_reason_is_capped() -> None:
    text = "1+1=3\n2+2=5\n3+3=7\n4+4=9\n5+5=10\n#### 10"
    passed, score, reason = await verify(text)
    assert not passed
    assert score == pytest.approx(0.2)
    assert reason.startswith("4 of 5 calculation(s) wrong")
    assert reason.endswith("and 1 more")


async def test_tolerance_is_configurable() -> None:
    assert (await verify("100 / 3 = 33.3333\n#### 33.3333"))[0]  # rounding is accepted
    assert (await verify("1000 + 1 = 1000\n#### 1000", rel_tol=0.01))[0]
    assert not (await verify("1000 + 1 = 1000\n#### 1000"))[0]


async def test_unsupported_final_answer_fails() -> None:
    text = "She has 16 - 3 = 13 eggs and sells 13 * 2 = 26 dollars.\n#### 30"
    passed, score, reason = await verify(text)
    assert (passed, score) == (False, 1.0)
    assert "final answer 30 appears nowhere in the working" in reason
    assert (await verify(text, require_supported_answer=False))[0]


async def test_final_answer_may_be_any_number_of_the_working() -> None:
    text = "2.5 bolts = 5/2 = 2.5, but a bolt is whole, so 3 bolts.\n#### 3"
    assert (await verify(text)) == (True, 1.0, "1 calculation(s) right, final answer 3")


async def test_final_answer_without_working_is_not_questioned() -> None:
    assert (await verify("#### 12"))[0]


def test_huge_numbers_are_skipped() -> None:
    assert oks("1" * 5000 + " + 1 = 2") == []


@pytest.mark.parametrize(("rel_tol", "abs_tol"), [(-1.0, 0.0), (0.0, float("inf"))])
def test_bad_tolerance_is_rejected(rel_tol: float, abs_tol: float) -> None:
    with pytest.raises(ValueError, match="tolerances must be finite and >= 0"):
        ArithmeticVerifier(rel_tol=rel_tol, abs_tol=abs_tol)
