"""The calibrated policy, replayed through the real Router on held-out data, meets its target.

Both scorers a policy can load: the learned JSON scorer (the default) and the kNN + learned mix
(``--scorer mix``; its ``hashed`` encoder keeps the test within budget — the real MiniLM runs in
test_calibrate_knn.py and on all of MMLU in benchmarks/economics.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from paxis_router.cli import main

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "routellm"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scorer_args", "scorer_format"),
    [([], "paxis-scorer/1"), (["--scorer", "mix", "--encoder", "hashed"], "paxis-knn-scorer/2")],
)
def test_policy_fitted_for_95_percent_lands_within_2_points_on_held_out_mmlu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scorer_args: list[str], scorer_format: str
) -> None:
    # RouteLLM's MMLU outcomes (10,988 after decontamination), split in two at random by
    # `paxis calibrate --holdout` (repeated questions on one side): the policy is fitted on one
    # half and replayed through the real Router on the other, which it was not fitted on.
    policy = tmp_path / "policy.yaml"
    data = str(DATA / "mmlu" / "responses")
    args = ["calibrate", "--data", data, "--holdout", "0.5", "--target-quality", "0.95"]
    assert main([*args, "-o", str(policy), *scorer_args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    held_out = summary["holdout_file"]
    written = yaml.safe_load(policy.read_text())["policy"]["escalate_when"]["score_below"]
    scorer = written["scorer"]
    if isinstance(scorer, str):  # a file beside the policy (the kNN scorer), else inline
        scorer = json.loads(Path(scorer).read_text())
    assert scorer["format"] == scorer_format
    assert main(["replay", "--policy", str(policy), "--data", held_out, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == summary["holdout_rows"] == 10_988 - summary["n"]
    assert report["in_sample_rows"] == 0
    # The whole data set holds the fitted half: replaying it is refused as in-sample.
    assert main(["replay", "--policy", str(policy), "--data", data, "--json"]) == 2
    assert "were in the data the policy was fitted on" in capsys.readouterr().err
    quality_share = report["accuracy"] / report["strong_accuracy"]
    assert quality_share == pytest.approx(0.95, abs=0.02)
    # It got there by escalating part of the traffic, not all of it.
    assert 0.2 < report["strong_call_share"] < 0.8
    assert report["usd_per_1k"] < 0.8 * report["strong_only_usd_per_1k"]
    # The held-out share of escalated routes is the one chosen on the cross-fitted scores.
    assert report["strong_call_share"] == pytest.approx(
        summary["point"]["strong_call_share"], abs=0.03
    )
