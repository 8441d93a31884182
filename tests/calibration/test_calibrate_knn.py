"""The embedding-neighbour escalation scorer: fitting, files, the Router path, the CLI."""

from __future__ import annotations

import doctest
import json
import random
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from paxis_router.calibration import knn as _calibrate_knn
from paxis_router.calibration.datasets import Example, load_examples
from paxis_router.calibration.knn import (
    KnnScorer,
    crossfit_neighbours,
    hashed_encoder,
    neighbour_values,
)
from paxis_router.calibration.thresholds import calibrate, crossfit_scores, load_scorer
from paxis_router.cli import main
from paxis_router.config.predicates import parse_predicate
from paxis_router.errors import ConfigError
from paxis_router.policy.predicates import EscalationPolicy, tiers_exhausted
from paxis_router.router import Router
from paxis_router.testing import FakeWorker
from paxis_router.types import ChatRequest

W, S = "weak-model", "strong-model"
# The worker is right on history and wrong on chemistry; the top tier is right on both.
TOPICS = {
    "history": (["king", "empire", "war", "treaty", "century"], 0.9),
    "chemistry": (["molecule", "acid", "bond", "electron", "reaction"], 0.2),
}


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = "history" if i % 2 else "chemistry"
        words, p_weak = TOPICS[topic]
        prompt = "Question about " + " ".join(rng.sample(words, 3)) + f" number {i}?"
        rows.append(
            {
                "id": f"q{i}",
                "prompt": prompt,
                "group": f"{topic}-{i % 6}",
                "tiers": {
                    W: {"response": "The answer is B.", "correct": rng.random() < p_weak},
                    S: {"response": "The answer is B.", "correct": rng.random() < 0.95},
                },
            }
        )
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[Example]:
    return load_examples([_write(tmp_path_factory.mktemp("knn") / "d.jsonl", _rows(120, 1))])


def _topic(examples: list[Example], name: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.array([e.group.startswith(name) for e in examples])


def test_neighbour_values_are_the_exp_weighted_mean_of_the_k_nearest() -> None:
    angles = np.radians([0.0, 10.0, 20.0, 90.0])
    pool = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    values = np.array([1.0, -1.0, 0.5, 7.0])
    got = neighbour_values(pool[:1], pool, values, k=3, temperature=2.0)
    cos = np.cos(angles[:3])
    weight = np.exp(2.0 * cos)
    assert got[0] == pytest.approx(float((weight * values[:3]).sum() / weight.sum()))
    # k beyond the pool reads the whole pool; a huge temperature is the nearest one's value.
    assert neighbour_values(pool[:1], pool, values, k=99, temperature=0.0)[0] == pytest.approx(
        values.mean()
    )
    assert neighbour_values(pool[3:], pool, values, k=2, temperature=500.0)[0] == pytest.approx(7.0)


def test_crossfitted_neighbours_never_read_the_rows_own_fold() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    values = rng.normal(size=40)
    fold = np.arange(40) % 4
    before = crossfit_neighbours(emb, values, fold, k=5, temperature=10.0)
    changed = values.copy()
    changed[fold == 2] += 100.0  # a fold's own labels cannot move its scores
    after = crossfit_neighbours(emb, changed, fold, k=5, temperature=10.0)
    assert after[fold == 2] == pytest.approx(before[fold == 2])
    assert not np.allclose(after[fold != 2], before[fold != 2])


def test_knn_calibration_escalates_the_topic_the_worker_gets_wrong(
    examples: list[Example],
) -> None:
    cal = calibrate(examples, weak=W, strong=S, max_escalation=0.5, scorer="knn", encoder="hashed")
    assert isinstance(cal.scorer, KnnScorer)
    assert cal.scorer.learned is None
    assert cal.apgr > 0.65
    fresh = _rows(40, seed=7)  # new questions: each topic's land on their own side
    scores = np.array(cal.scorer.score_many([r["prompt"] for r in fresh], [""] * 40))
    chemistry = np.array([i % 2 == 0 for i in range(40)])
    assert scores[chemistry].max() < cal.point.threshold < scores[~chemistry].min()
    assert cal.scorer.score("Question about acid bond electron?", "") < cal.point.threshold
    assert cal.scorer.score("Question about king war treaty?", "") > cal.point.threshold


def test_mix_is_the_mean_of_the_learned_and_knn_scores(examples: list[Example]) -> None:
    common: dict[str, Any] = {"weak": W, "strong": S, "folds": 4, "buckets": 64}
    learned = crossfit_scores(examples, **common)
    knn = crossfit_scores(examples, scorer="knn", encoder="hashed", **common)
    mix = crossfit_scores(examples, scorer="mix", encoder="hashed", **common)
    assert mix == pytest.approx((learned + knn) / 2)
    cal = calibrate(examples, target_quality=0.95, scorer="mix", encoder="hashed", **common)
    assert isinstance(cal.scorer, KnnScorer)
    assert cal.scorer.learned is not None
    assert cal.scorer.weights == (0.5, 0.5)
    prompt = examples[0].prompt
    knn_only = KnnScorer(cal.scorer.embeddings, cal.scorer.values, encoder="hashed")
    expected = (knn_only.score(prompt, "x") + cal.scorer.learned.score(prompt, "x")) / 2
    assert cal.scorer.score(prompt, "x") == pytest.approx(expected)


def test_group_folds_take_neighbours_from_other_groups_only(examples: list[Example]) -> None:
    groups = [e.group for e in examples]
    scores = crossfit_scores(
        examples, weak=W, strong=S, folds=3, groups=groups, scorer="knn", encoder="hashed"
    )
    # Rewriting one group's labels leaves that group's own scores where they were.
    flipped = []
    for e in examples:
        outcomes = dict(e.outcomes)
        if e.group == "history-1":
            weak = outcomes[W]
            outcomes[W] = replace(weak, correct=not weak.correct)
        flipped.append(Example(e.id, e.prompt, outcomes, e.group))
    again = crossfit_scores(
        flipped, weak=W, strong=S, folds=3, groups=groups, scorer="knn", encoder="hashed"
    )
    own = np.array([g == "history-1" for g in groups])
    assert again[own] == pytest.approx(scores[own])
    assert not np.allclose(again[~own], scores[~own])


def test_the_scorer_file_round_trips_in_float16(tmp_path: Path, examples: list[Example]) -> None:
    cal = calibrate(
        examples, weak=W, strong=S, target_quality=0.95, scorer="mix", encoder="hashed", buckets=64
    )
    assert isinstance(cal.scorer, KnnScorer)
    data = cal.scorer.save(tmp_path / "s.scorer.json")
    assert data == tmp_path / "s.scorer.npz"
    with np.load(data, allow_pickle=False) as arrays:
        assert arrays["embeddings"].dtype == np.float16
        assert arrays["embeddings"].shape == (120, _calibrate_knn.HASHED_DIMS)
        assert arrays["values"].shape == (120,)
    meta = json.loads((tmp_path / "s.scorer.json").read_text())
    assert (meta["format"], meta["encoder"], meta["k"], meta["data"]) == (
        "paxis-knn-scorer/2",
        "hashed",
        50,
        "s.scorer.npz",
    )
    loaded = load_scorer(str(tmp_path / "s.scorer.json"))
    assert isinstance(loaded, KnnScorer)
    prompts = [e.prompt for e in examples[:10]]
    assert loaded.score_many(prompts, ["r"] * 10) == pytest.approx(
        cal.scorer.score_many(prompts, ["r"] * 10), abs=2e-3
    )


def test_score_below_with_a_knn_file_drives_the_router(
    tmp_path: Path, examples: list[Example]
) -> None:
    cal = calibrate(examples, weak=W, strong=S, max_escalation=0.5, scorer="knn", encoder="hashed")
    assert isinstance(cal.scorer, KnnScorer)
    path = tmp_path / "scorer.json"
    cal.scorer.save(path)
    spec = cal.escalate_when(str(path))
    assert spec["score_below"]["scorer"] == str(path)
    policy = EscalationPolicy(escalate_when=parse_predicate(spec), stop_when=tiers_exhausted())
    router = Router(
        tiers=[FakeWorker(["B"] * 2, name="w"), FakeWorker(["B"] * 2, name="s")], policy=policy
    )
    chemistry = router.route_sync(ChatRequest.from_text("Question about acid electron bond?"))
    history = router.route_sync(ChatRequest.from_text("Question about empire king century?"))
    assert (chemistry.tier, chemistry.escalated) == ("s", True)
    assert (history.tier, history.escalated) == ("w", False)
    with pytest.raises(ConfigError, match="referred to by its file"):
        cal.escalate_when()


def test_an_injected_encoder_replaces_the_named_one(tmp_path: Path) -> None:
    def encode(texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([[1.0, 0.0] if "acid" in t else [0.0, 1.0] for t in texts])

    scorer = KnnScorer(
        np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([-0.7, 0.2]), k=1, encoder="my-encoder"
    )
    scorer.save(tmp_path / "s.json")
    with pytest.raises(ConfigError, match=r"s\.json: encoder: unknown encoder 'my-encoder'"):
        load_scorer(str(tmp_path / "s.json"))
    loaded = load_scorer(str(tmp_path / "s.json"), encode=encode)
    assert loaded.score("acid?", "") == pytest.approx(-0.7, abs=1e-3)
    assert loaded.score("war?", "") == pytest.approx(0.2, abs=1e-3)


def test_a_missing_embed_extra_is_a_config_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = KnnScorer(np.eye(2), np.array([0.1, -0.1]), encoder="minilm")
    scorer.save(tmp_path / "minilm.scorer.json")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"minilm\.scorer\.json.*\[embed\] extra"):
        parse_predicate(
            {"score_below": {"threshold": 0.0, "scorer": str(tmp_path / "minilm.scorer.json")}}
        )


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"k": 5}, "malformed kNN scorer"),
        ({"k": 0}, "k must be >= 1"),
        ({"weights": {"knn": 0.5, "learned": 0.5}}, "no learned scorer"),
        ({"data": "missing.npz"}, "cannot read the scorer's data"),
    ],
)
def test_bad_knn_files_are_config_errors(tmp_path: Path, meta: dict[str, Any], match: str) -> None:
    path = tmp_path / "s.json"
    KnnScorer(np.eye(2), np.array([0.1, -0.1]), encoder="hashed").save(path)
    written = json.loads(path.read_text())
    written.update(meta)
    if meta == {"k": 5}:
        del written["temperature"]
    path.write_text(json.dumps(written))
    with pytest.raises(ConfigError, match=match):
        load_scorer(str(path))


def test_mismatched_arrays_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    KnnScorer(np.eye(2), np.array([0.1, -0.1]), encoder="hashed").save(path)
    np.savez(tmp_path / "s.npz", embeddings=np.eye(2), values=np.zeros(3))
    with pytest.raises(ConfigError, match="differ"):
        load_scorer(str(path))


def test_cli_calibrate_mix_then_replay_with_the_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _write(tmp_path / "train.jsonl", _rows(120, seed=1))
    held_out = _write(tmp_path / "held_out.jsonl", _rows(60, seed=2))
    policy = tmp_path / "out" / "policy.yaml"
    args = ["calibrate", "--data", str(train), "--weak", W, "--strong", S, "-o", str(policy)]
    assert main([*args, "--scorer", "mix", "--encoder", "hashed", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["apgr"] > 0.65
    written = yaml.safe_load(policy.read_text())["policy"]["escalate_when"]["score_below"]
    assert written["scorer"] == str(policy.with_suffix(".scorer.json"))
    assert policy.with_suffix(".scorer.npz").is_file()
    assert "paxis-knn-scorer/2" in policy.read_text().split("tiers:")[0]
    replay = ["replay", "--policy", str(policy), "--data", str(held_out), "--weak", W]
    assert main([*replay, "--strong", S, "--curve", "--json", "--exclude-fitted"]) == 0
    report = json.loads(capsys.readouterr().out)
    # One question of the second draw is also in the first: fitted on, so left out.
    assert (report["n"], report["excluded_fitted_rows"]) == (59, 1)
    assert report["apgr"] > 0.65
    assert report["accuracy"] > report["weak_accuracy"]


def test_cli_rejects_an_unknown_encoder_and_knn_on_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _write(tmp_path / "train.jsonl", _rows(40, seed=1))
    base = ["calibrate", "--weak", W, "--strong", S, "-o", str(tmp_path / "p.yaml")]
    assert main([*base, "--data", str(train), "--scorer", "knn", "--encoder", "nope"]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert main([*base, "--ledger", str(train), "--scorer", "knn"]) == 2
    assert "--ledger fits the learned scorer only" in capsys.readouterr().err


def test_docstring_examples_run() -> None:
    result = doctest.testmod(_calibrate_knn)
    assert result.attempted > 0
    assert result.failed == 0


def test_hashed_encoder_rows_are_unit_length_and_empty_text_is_zero() -> None:
    vectors = hashed_encoder(32)(["acid bond", ""])
    assert float(np.linalg.norm(vectors[0])) == pytest.approx(1.0)
    assert not vectors[1].any()


@pytest.mark.slow
def test_the_real_minilm_encoder_scores_through_a_policy_file(
    tmp_path: Path, examples: list[Example]
) -> None:
    pytest.importorskip("sentence_transformers")
    cal = calibrate(examples, weak=W, strong=S, max_escalation=0.5, scorer="knn", folds=3)
    assert isinstance(cal.scorer, KnnScorer)
    assert cal.scorer.embeddings.shape == (120, 384)
    assert cal.apgr > 0.65
    cal.scorer.save(tmp_path / "minilm.json")
    predicate = parse_predicate(cal.escalate_when(str(tmp_path / "minilm.json")))
    policy = EscalationPolicy(escalate_when=predicate, stop_when=tiers_exhausted())
    router = Router(tiers=[FakeWorker(["B"]), FakeWorker(["B"], name="s")], policy=policy)
    routed = router.route_sync(ChatRequest.from_text("A question about an acid and a molecule?"))
    assert (routed.tier, routed.escalated) == ("s", True)


def test_unknown_scorer_kinds_and_foreign_files_are_config_errors(
    tmp_path: Path, examples: list[Example]
) -> None:
    with pytest.raises(ConfigError, match="unknown scorer kind 'forest'"):
        calibrate(examples, weak=W, strong=S, target_quality=0.95, scorer="forest")
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"format": "paxis-scorer/1"}))
    with pytest.raises(
        ConfigError, match=r"expected 'paxis-knn-scorer/2' \(or 'paxis-knn-scorer/1'\)"
    ):
        KnnScorer.load(learned)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ConfigError, match="a scorer is a mapping"):
        KnnScorer.load(listed)
    with pytest.raises(ConfigError, match="cannot read scorer"):
        KnnScorer.load(tmp_path / "absent.json")
