"""A policy records the rows it was fitted on; replay refuses them, drops them, or labels them."""

from __future__ import annotations

import doctest
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from paxis_router.calibration import fingerprint as fingerprint_module
from paxis_router.calibration.datasets import Example, holdout_split, load_examples
from paxis_router.calibration.fingerprint import RowFingerprint
from paxis_router.cli import main
from paxis_router.config.calibrated import check_held_out, replay, training_overlap
from paxis_router.config.schema import load_config
from paxis_router.errors import ConfigError

W, S = "weak-model", "strong-model"


def _rows(n: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    """Arithmetic questions, unique by number; the worker is wrong on a visible share."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        a, b = rng.randint(2, 90), rng.randint(2, 90)
        ok = rng.random() < 0.7
        answer = (
            f"{a} + {b} = <<{a}+{b}={a + b + (0 if ok else 1)}>>\n#### {a + b + (0 if ok else 1)}"
        )
        rows.append(
            {
                "id": f"q{i}",
                "prompt": f"Question {i}: Tom has {a} apples and buys {b} more. How many?",
                "group": f"g{i % 4}",
                "tiers": {
                    W: {"response": answer, "correct": ok},
                    S: {"response": f"#### {a + b}", "correct": rng.random() < 0.95},
                },
            }
        )
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _calibrate(data: Path, policy: Path, *extra: str) -> None:
    args = ["calibrate", "--data", str(data), "--weak", W, "--strong", S]
    assert main([*args, "--max-escalation", "0.4", "-o", str(policy), *extra, "--json"]) == 0


def _replay(policy: Path, data: Path, *extra: str) -> list[str]:
    return ["replay", "--policy", str(policy), "--data", str(data), "--json", *extra]


# --- the fingerprint --------------------------------------------------------------------------


def test_fingerprint_round_trips_and_counts_what_it_holds() -> None:
    prompts = [f"question {i}?" for i in range(300)]
    fp = RowFingerprint.of_prompts([*prompts, prompts[0]])  # one duplicate row
    assert (fp.rows, fp.unique_rows) == (301, 300)
    again = RowFingerprint.from_dict(yaml.safe_load(yaml.safe_dump(fp.to_dict())))
    assert again == fp
    # Whitespace and Unicode composition do not make a prompt new.
    assert again.contains("question  7?\n") and again.contains("question 7?")
    assert again.contains("cafe\u0301") is False
    assert RowFingerprint.of_prompts(["café"]).contains("cafe\u0301")
    overlap = again.overlap([*prompts[:100], *(f"other {i}?" for i in range(100))])
    assert (overlap.rows, overlap.fitted, overlap.share) == (200, 100, 0.5)
    assert overlap.same_data is False
    assert again.overlap(reversed(prompts)).same_data is True


def test_fingerprint_is_about_3_bytes_a_row_and_rarely_matches_by_chance() -> None:
    fp = RowFingerprint.of_prompts(f"fitted question {i}" for i in range(10_000))
    assert len(fp.to_dict()["hashes"]) < 4.2 * 10_000  # base64 of ~3-byte varints
    # About 2**-20 a row: none of 20,000 unseen prompts matches.
    assert fp.overlap(f"unseen question {i}" for i in range(20_000)).fitted == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "paxis-fitted-rows/9"}, "unknown fingerprint format"),
        ({"hashes": "not base64!"}, "malformed fingerprint"),
        ({"rows": 1}, "counts do not add up"),
        ({"modulus": 2}, "not below the modulus"),
        ({"digest": None, "bits": "x"}, "malformed fingerprint"),
    ],
)
def test_a_bad_fingerprint_is_a_config_error_naming_the_field(
    change: dict[str, Any], match: str
) -> None:
    data = {**RowFingerprint.of_prompts(["a", "b", "c"]).to_dict(), **change}
    with pytest.raises(ConfigError, match=f"fitted_on.*{match}"):
        RowFingerprint.from_dict(data, source="p.yaml")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(fingerprint_module)
    assert result.attempted > 0
    assert result.failed == 0


# --- holdout splits -----------------------------------------------------------------------------


def _examples(n: int) -> list[Example]:
    return [Example(f"q{i}", f"prompt {i % (n // 2)}", {}, f"g{i % 5}") for i in range(n)]


def test_a_random_holdout_keeps_repeated_prompts_on_one_side() -> None:
    rows = _examples(40)  # every prompt twice
    fit, held = holdout_split(rows, 0.5, seed=3)
    assert len(fit) == len(held) == 20
    assert not {e.prompt for e in fit} & {e.prompt for e in held}
    assert [e.id for e in fit] == sorted((e.id for e in fit), key=lambda x: int(x[1:]))


def test_a_group_holdout_holds_out_whole_groups_and_no_fitted_question() -> None:
    rows = [Example(f"q{i}", f"prompt {i}", {}, f"g{i % 5}") for i in range(40)]
    fit, held = holdout_split(rows, 0.4, by_group=True, seed=0)
    assert len({e.group for e in held}) == 2 and len(held) == 16
    assert not {e.group for e in fit} & {e.group for e in held}
    # The same question filed under two subjects: fitted under one, so not held out under the
    # other (MMLU files 78 such rows in a half of its subjects).
    twin = Example("twin", fit[0].prompt, {}, held[0].group)
    fit2, held2 = holdout_split([*rows, twin], 0.4, by_group=True, seed=0)
    assert twin not in held2 and twin not in fit2 and len(held2) == 16


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5])
def test_a_holdout_share_outside_0_1_is_an_error(share: float) -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        holdout_split(_examples(10), share)


# --- replay through the CLI ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A policy fitted on 120 rows (q0..q119), and that data."""
    root = tmp_path_factory.mktemp("fp")
    data = _write(root / "train.jsonl", _rows(120, seed=1))
    policy = root / "policy.yaml"
    _calibrate(data, policy)
    return policy, data


def test_calibrate_writes_the_fingerprint_of_the_fitted_rows(fitted: tuple[Path, Path]) -> None:
    policy, data = fitted
    cfg = load_config(policy)
    assert cfg.fitted_on is not None and cfg.fitted_on.rows == 120
    overlap = training_overlap(cfg, (e.prompt for e in load_examples([data])))
    assert overlap is not None and overlap.same_data and overlap.fitted == 120
    assert "# fitted on 120 rows" in policy.read_text()


def test_replaying_the_fitted_rows_is_refused(
    fitted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policy, data = fitted
    assert main(_replay(policy, data)) == 2
    err = capsys.readouterr().err
    assert "exactly the 120 rows the policy was fitted on" in err
    assert "--allow-in-sample" in err and "--holdout" in err


def test_allow_in_sample_replays_and_labels_the_result(
    fitted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policy, data = fitted
    assert main(_replay(policy, data, "--allow-in-sample")) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["in_sample"], report["in_sample_rows"], report["n"]) == (True, 120, 120)
    text_args = ["replay", "--policy", str(policy), "--data", str(data), "--allow-in-sample"]
    assert main(text_args) == 0
    assert capsys.readouterr().out.startswith("IN-SAMPLE: 120 of 120 rows were fitted on")


def test_held_out_rows_replay_unlabelled(
    fitted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy, _ = fitted
    held_out = _write(tmp_path / "held_out.jsonl", _rows(80, seed=2, start=1000))
    assert main(_replay(policy, held_out)) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["in_sample"], report["in_sample_rows"], report["n"]) == (False, 0, 80)


def test_partial_overlap_is_counted_refused_or_excluded(
    fitted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy, _ = fitted
    # 30 rows the policy was fitted on (same prompts, other ids and file) and 90 new ones.
    mixed = _write(
        tmp_path / "mixed.jsonl",
        [*_rows(120, seed=1)[:30], *_rows(90, seed=5, start=2000)],
    )
    assert main(_replay(policy, mixed)) == 2
    assert "30 of 120 rows (25.0%) were in the data the policy was fitted on" in (
        capsys.readouterr().err
    )
    assert main(_replay(policy, mixed, "--exclude-fitted")) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n"], report["excluded_fitted_rows"], report["in_sample_rows"]) == (90, 30, 0)
    assert main(_replay(policy, mixed, "--allow-in-sample")) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n"], report["in_sample_rows"]) == (120, 30)


def test_exclude_fitted_with_nothing_left_is_an_error(
    fitted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policy, data = fitted
    assert main(_replay(policy, data, "--exclude-fitted")) == 2
    assert "all 120 rows were fitted on: nothing held out" in capsys.readouterr().err


def test_check_held_out_is_the_function_other_faces_call(fitted: tuple[Path, Path]) -> None:
    policy, data = fitted
    cfg = load_config(policy)
    prompts = [e.prompt for e in load_examples([data])]
    with pytest.raises(ConfigError, match=r"policy\.yaml: fitted_on: these 120 rows are exactly"):
        check_held_out(cfg, prompts)
    overlap = check_held_out(cfg, prompts[:10], allow_in_sample=True)
    assert overlap is not None and (overlap.fitted, overlap.same_data) == (10, False)
    assert check_held_out(cfg, ["a question never seen"]) is not None


def test_a_policy_without_a_fingerprint_replays_with_unknown_overlap(
    fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    policy, data = fitted
    document = yaml.safe_load(policy.read_text())
    del document["fitted_on"]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(document))
    cfg = load_config(bare)
    examples = load_examples([data])
    assert training_overlap(cfg, [e.prompt for e in examples]) is None
    report = replay(cfg, examples, weak=W, strong=S)
    assert (report.in_sample, report.in_sample_rows) == (False, None)


def test_holdout_writes_the_unfitted_rows_for_an_honest_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "all.jsonl", _rows(200, seed=7))
    policy = tmp_path / "policy.yaml"
    _calibrate(data, policy, "--holdout", "0.5")
    summary = json.loads(capsys.readouterr().out)
    holdout = Path(summary["holdout_file"])
    assert holdout == policy.with_suffix(".holdout.jsonl")
    assert summary["holdout_rows"] == 100 and summary["n"] == 100
    assert load_config(policy).fitted_on is not None
    assert main(_replay(policy, holdout)) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n"], report["in_sample_rows"]) == (100, 0)
    # The whole file holds the 100 fitted rows: refused; the unfitted ones are the holdout file.
    assert main(_replay(policy, data)) == 2
    assert "100 of 200 rows (50.0%)" in capsys.readouterr().err
    assert main(_replay(policy, data, "--exclude-fitted")) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n"], report["excluded_fitted_rows"]) == (100, 100)


def test_holdout_by_group_and_holdout_on_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "all.jsonl", _rows(200, seed=8))
    policy = tmp_path / "policy.yaml"
    _calibrate(data, policy, "--holdout", "0.25", "--group-folds", "--folds", "3")
    summary = json.loads(capsys.readouterr().out)
    held = load_examples([Path(summary["holdout_file"])])
    assert {e.group for e in held} == {held[0].group} and len(held) == 50
    args = ["calibrate", "--ledger", str(tmp_path / "l.db"), "--holdout", "0.5"]
    assert main([*args, "--weak", W, "--strong", S, "-o", str(policy)]) == 2
    assert "--holdout splits a --data file" in capsys.readouterr().err
