from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from paxis_router.calibration.datasets import Example, load_examples
from paxis_router.calibration.fit import fit, prepare, score_rows
from paxis_router.calibration.scorer import LearnedScorer
from paxis_router.calibration.thresholds import (
    calibrate,
    calibrate_scores,
    crossfit_scores,
    score_below,
)
from paxis_router.cli import main
from paxis_router.config.predicates import parse_predicate
from paxis_router.config.schema import load_config
from paxis_router.errors import ConfigError
from paxis_router.policy.predicates import EscalationPolicy, tiers_exhausted
from paxis_router.router import Router
from paxis_router.testing import FakeWorker, make_state
from paxis_router.types import ChatRequest

W, S = "weak-model", "strong-model"


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    """GSM8K-like synthetic outcomes: a wrong worker answer shows a sign a scorer can learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 90), rng.randint(2, 90)
        prompt = f"Tom has {a} apples and buys {b} more. How many apples does he have?"
        kind = rng.random()
        if kind < 0.6:
            answer, ok = (
                f"He has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}",
                True,
            )
        elif kind < 0.8:
            answer, ok = (
                f"He has {a} + {b} = <<{a}+{b}={a + b + 1}>>{a + b + 1}.\n#### {a + b + 1}",
                False,
            )
        else:
            answer, ok = (
                f"Maybe about {a}/{b} = {a / b:.2f}, however I assume\n#### {a / b:.2f}",
                False,
            )
        strong_ok = rng.random() < 0.95
        rows.append(
            {
                "id": f"q{i}",
                "prompt": prompt,
                "tiers": {
                    W: {"response": answer, "correct": ok},
                    S: {"response": f"#### {a + b}", "correct": strong_ok},
                },
            }
        )
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[Example]:
    path = _write(tmp_path_factory.mktemp("data") / "train.jsonl", _rows(120, seed=1))
    return load_examples([path])


def test_calibrate_scores_picks_the_cheapest_point_that_meets_each_target() -> None:
    scores = [0.9, 0.2, 0.6, 0.4]
    weak, strong = [1, 0, 1, 0], [1, 1, 1, 1]
    cal = calibrate_scores(scores, weak, strong, target_quality=1.0)
    assert (cal.point.threshold, cal.point.strong_call_share, cal.point.quality) == (0.5, 0.5, 1.0)
    cal = calibrate_scores(scores, weak, strong, max_escalation=0.3)
    assert cal.point.threshold == pytest.approx(0.3)
    assert cal.point.strong_call_share == 0.25
    costs_w = [Decimal("0.001")] * 4
    costs_s = [Decimal("0.01")] * 4
    # Worker on all four ($0.004) + top tier on k of them ($0.01 each): $1 + $2.5k per 1,000.
    cal = calibrate_scores(
        scores, weak, strong, max_usd_per_1k=Decimal(7), weak_cost=costs_w, strong_cost=costs_s
    )
    assert cal.point.strong_call_share == 0.5
    assert cal.point.usd_per_1k == Decimal("6.000000")


def test_an_unreachable_target_says_so() -> None:
    cal = calibrate_scores([0.1, 0.2], [0, 1], [1, 1], target_quality=1.5)
    assert cal.notes and "unreachable" in cal.notes[0]


def test_equal_models_leave_nothing_to_calibrate() -> None:
    with pytest.raises(ConfigError, match="same quality"):
        calibrate_scores([0.1, 0.2], [0, 1], [0, 1], max_escalation=0.5)


def test_exactly_one_target_is_required() -> None:
    with pytest.raises(ConfigError, match="exactly one target"):
        calibrate_scores([0.1, 0.2], [0, 1], [1, 1])


def test_vectorised_scores_equal_the_runtime_scorer(examples: list[Example]) -> None:
    prompts = [e.prompt for e in examples]
    responses = [e.outcomes[W].response for e in examples]
    design = prepare(prompts, responses, buckets=64)
    labels = np.array([float(bool(e.outcomes[W].correct)) for e in examples])
    strong = np.array([float(bool(e.outcomes[S].correct)) for e in examples])
    scorer = fit(design, np.arange(80), labels, strong)
    test = np.arange(80, 120)
    fast = score_rows(scorer, design, test)
    slow = [scorer.score(prompts[i], responses[i]) for i in test]
    assert fast == pytest.approx(slow, abs=1e-9)
    # A JSON round trip (6 significant digits) keeps the scores.
    again = LearnedScorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
    assert [again.score(prompts[i], responses[i]) for i in test] == pytest.approx(slow, abs=1e-4)


def test_crossfit_scores_separate_right_from_wrong_answers(examples: list[Example]) -> None:
    scores = crossfit_scores(examples, weak=W, strong=S, folds=4, buckets=64)
    right = [s for s, e in zip(scores, examples, strict=True) if e.outcomes[W].correct]
    wrong = [s for s, e in zip(scores, examples, strict=True) if not e.outcomes[W].correct]
    assert min(right) > max(wrong)


def test_crossfitting_never_scores_a_row_with_a_model_that_saw_it(examples: list[Example]) -> None:
    # Flip one row's label: its cross-fitted score must not move (its fold's model never saw it),
    # while a model fitted on all rows does move.
    flipped = list(examples)
    target = next(i for i, e in enumerate(examples) if e.outcomes[W].correct)
    e = examples[target]
    outcome = e.outcomes[W]
    wrong = type(outcome)(outcome.response, False, None, outcome.prompt_tokens, 1)
    flipped[target] = Example(e.id, e.prompt, {W: wrong, S: e.outcomes[S]}, e.group)
    a = crossfit_scores(examples, weak=W, strong=S, folds=4, buckets=64)
    b = crossfit_scores(flipped, weak=W, strong=S, folds=4, buckets=64)
    assert a[target] == pytest.approx(b[target], abs=1e-12)
    assert not np.allclose(a, b)


def test_score_below_escalates_low_scores_and_never_from_the_last_tier() -> None:
    low = score_below(LearnedScorer.constant(0.2), 0.5)
    assert low(make_state(tier_index=0, n_tiers=2)) is True
    assert low(make_state(tier_index=1, n_tiers=2)) is False
    assert low(make_state(error=True)) is True
    assert score_below(LearnedScorer.constant(0.8), 0.5)(make_state()) is False


QUESTION = "Tom has 7 apples and buys 3 more. How many apples does he have?"


def test_score_below_in_yaml_drives_the_router(examples: list[Example]) -> None:
    cal = calibrate(examples, weak=W, strong=S, target_quality=0.97, folds=4, buckets=64)
    predicate = parse_predicate(cal.escalate_when())
    policy = EscalationPolicy(escalate_when=predicate, stop_when=tiers_exhausted())
    router = Router(
        tiers=[
            FakeWorker(["Maybe about 7/3 = 2.33, however I assume\n#### 2.33"], name="w"),
            FakeWorker(["#### 10"], name="s"),
        ],
        policy=policy,
    )
    hedge = router.route_sync(ChatRequest.from_text(QUESTION))
    assert (hedge.tier, hedge.escalated) == ("s", True)
    router = Router(
        tiers=[
            FakeWorker(["7 + 3 = <<7+3=10>>10 apples.\n#### 10"], name="w"),
            FakeWorker(["x"], name="s"),
        ],
        policy=policy,
    )
    sound = router.route_sync(ChatRequest.from_text(QUESTION))
    assert (sound.tier, sound.escalated) == ("w", False)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"threshold": 0.5}, "score_below takes"),
        ({"threshold": 0.5, "scorer": {"format": "other"}}, "unknown scorer format"),
        ({"threshold": 0.5, "scorer": "/nonexistent/scorer.json"}, "cannot read scorer"),
    ],
)
def test_bad_score_below_specs_are_config_errors(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_predicate({"score_below": spec})


def test_score_below_reads_a_scorer_file(tmp_path: Path) -> None:
    path = tmp_path / "scorer.json"
    path.write_text(json.dumps(LearnedScorer.constant(0.3).to_dict()))
    predicate = parse_predicate({"score_below": {"threshold": 0.4, "scorer": str(path)}})
    assert predicate(make_state()) is True


def test_cli_calibrate_then_replay_on_held_out_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _write(tmp_path / "train.jsonl", _rows(120, seed=1))
    held_out = _write(tmp_path / "held_out.jsonl", _rows(80, seed=2))
    policy = tmp_path / "out" / "policy.yaml"
    status = main(
        [
            "calibrate",
            "--data",
            str(train),
            "--weak",
            W,
            "--strong",
            S,
            "--max-escalation",
            "0.5",
            "-o",
            str(policy),
            "--json",
        ]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["point"]["strong_call_share"] <= 0.5
    assert summary["n"] == 120
    cfg = load_config(policy)
    assert [t.kind for t in cfg.tiers] == ["local", "litellm"]
    assert cfg.verifiers[0].kind == "arithmetic"
    curve = json.loads(policy.with_suffix(".curve.json").read_text())
    assert curve["frontier"][0]["strong_call_share"] == 0.0
    assert (
        yaml.safe_load(policy.read_text())["policy"]["escalate_when"]["score_below"]["scorer"][
            "format"
        ]
        == "paxis-scorer/1"
    )

    ledger = tmp_path / "replay.db"
    status = main(
        [
            "replay",
            "--policy",
            str(policy),
            "--data",
            str(held_out),
            "--curve",
            "--json",
            "--weak",
            W,
            "--strong",
            S,
            "--ledger",
            str(ledger),
            "--exclude-fitted",
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    # The two seeds draw a few identical questions: those were fitted on, and are left out.
    n = report["n"]
    assert n + report["excluded_fitted_rows"] == 80 and report["excluded_fitted_rows"] == 3
    assert report["in_sample_rows"] == 0
    for key in ("accuracy", "strong_call_share", "apgr", "cpt50", "cpt80"):
        assert 0.0 <= report[key] <= 1.0, key
    # One ledger row per attempt: every route calls the worker, escalated ones the top tier too.
    assert report["ledger_rows"] == n + round(report["strong_call_share"] * n)
    # The synthetic worker's mistakes are visible: the learned scorer beats random routing.
    assert report["apgr"] > 0.7
    assert report["accuracy"] > report["weak_accuracy"]


def test_replay_curve_needs_a_learned_scorer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "d.jsonl", _rows(10, seed=3))
    policy = tmp_path / "p.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "tiers": [
                    {"kind": "local", "model": W, "base_url": "http://127.0.0.1:9/v1"},
                    {"kind": "litellm", "model": "gpt-4-1106-preview"},
                ],
                "verifiers": [{"kind": "arithmetic"}],
                "policy": {"escalate_when": "verdict_failed", "on_exhausted": "return_best"},
            }
        )
    )
    args = ["replay", "--policy", str(policy), "--data", str(data), "--strong", S]
    assert main([*args, "--curve", "--json"]) == 2
    assert "no score_below predicate" in capsys.readouterr().err
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The arithmetic verifier escalates exactly the answers whose written sum is wrong.
    sums = [
        re.search(r"<<(\d+)\+(\d+)=(\d+)>>", r["tiers"][W]["response"]) for r in _rows(10, seed=3)
    ]
    wrong = sum(1 for m in sums if m and int(m[1]) + int(m[2]) != int(m[3]))
    assert report["n"] == 10
    assert 0 < wrong < 10
    assert report["strong_call_share"] == wrong / 10
    assert report["ledger_rows"] == 10 + wrong
