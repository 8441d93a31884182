from __future__ import annotations

import pytest

from paxis_router.calibration.metrics import Curve, apgr, cpt, pgr, sweep


def test_pgr_is_the_share_of_the_gap_recovered() -> None:
    assert pgr(0.75, 0.5, 1.0) == 0.5
    assert pgr(0.5, 0.5, 1.0) == 0.0
    assert pgr(1.1, 0.5, 1.0) == pytest.approx(1.2)


def test_pgr_without_a_gap_is_an_error() -> None:
    with pytest.raises(ValueError, match="same quality"):
        pgr(0.7, 0.6, 0.6)


def test_sweep_escalates_the_lowest_scores_first() -> None:
    # Gains (strong - weak) in score order: 1, 0, 0, 0. Weak mean 0.5, strong mean 0.75.
    curve = sweep([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], [1, 0, 1, 1], steps=4)
    assert curve.shares == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert curve.quality == (0.5, 0.75, 0.75, 0.75, 0.75)
    assert curve.pgr == (0.0, 1.0, 1.0, 1.0, 1.0)
    # Trapezoids: 0.25 * (0 + 1) / 2 + 0.75 * 1 = 0.875.
    assert apgr(curve) == pytest.approx(0.875)
    assert cpt(curve, 0.5) == 0.25
    assert cpt(curve, 0.8) == 0.25


def test_sweep_order_does_not_depend_on_input_order() -> None:
    a = sweep([0.4, 0.1, 0.3, 0.2], [1, 0, 1, 0], [1, 1, 1, 0], steps=4)
    b = sweep([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], [1, 0, 1, 1], steps=4)
    assert a == b


def test_tied_scores_are_split_in_expectation() -> None:
    # Two queries tie at score 0: one gains 1, one gains 0; escalating one of them gains 0.5.
    curve = sweep([0.0, 0.0, 1.0], [0, 1, 1], [1, 1, 1], steps=3)
    assert curve.quality[1] == pytest.approx(2 / 3 + 0.5 / 3)
    assert curve.pgr[1] == pytest.approx(0.5)


def test_a_constant_scorer_is_random_routing() -> None:
    curve = sweep([0.3] * 4, [0, 1, 0, 1], [1, 1, 1, 0], steps=4)
    assert curve.pgr == pytest.approx(curve.shares)
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.8) == 1.0


def test_graded_scores_work_like_accuracy() -> None:
    # MT-Bench style judge scores: weak 6 and 8, strong 9 and 8 -> gap 1.5.
    curve = sweep([0.0, 1.0], [6.0, 8.0], [9.0, 8.0], steps=2)
    assert curve.weak_quality == 7.0
    assert curve.strong_quality == 8.5
    assert curve.pgr == (0.0, 1.0, 1.0)


def test_cpt_is_none_when_never_reached() -> None:
    curve = Curve((0.0, 1.0), (0.0, 0.4), (0.0, 0.4), 0.0, 1.0)
    assert cpt(curve, 0.5) is None


def test_apgr_of_a_known_curve() -> None:
    curve = Curve((0.0, 0.5, 1.0), (0.0, 0.8, 1.0), (0.0, 0.8, 1.0), 0.0, 1.0)
    # 0.5 * (0 + 0.8) / 2 + 0.5 * (0.8 + 1) / 2 = 0.2 + 0.45
    assert apgr(curve) == pytest.approx(0.65)


@pytest.mark.parametrize(
    ("scores", "weak", "strong", "match"),
    [
        ([], [], [], "non-empty"),
        ([0.1], [1.0, 0.0], [1.0, 1.0], "equal"),
        ([0.1, 0.2], [1.0, 1.0], [1.0, 1.0], "same quality"),
    ],
)
def test_sweep_rejects_bad_input(
    scores: list[float], weak: list[float], strong: list[float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        sweep(scores, weak, strong)
