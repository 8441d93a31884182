"""The calibrated policy, replayed through the real Router on held-out data, meets its target."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.datasets import load_examples, write_jsonl

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "routellm"


@pytest.mark.slow
def test_policy_fitted_for_95_percent_lands_within_2_points_on_held_out_mmlu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RouteLLM's MMLU outcomes (10,988 after decontamination), split in two at random: the
    # policy is fitted on one half and replayed through the real Router on the other.
    examples = load_examples([DATA / "mmlu" / "responses"])
    random.Random(0).shuffle(examples)
    half = len(examples) // 2
    fit = write_jsonl(tmp_path / "fit.jsonl", examples[:half])
    held_out = write_jsonl(tmp_path / "held_out.jsonl", examples[half:])
    policy = tmp_path / "policy.yaml"
    assert (
        main(["calibrate", "--data", str(fit), "--target-quality", "0.95", "-o", str(policy)]) == 0
    )
    capsys.readouterr()
    assert main(["replay", "--policy", str(policy), "--data", str(held_out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == len(examples) - half
    quality_share = report["accuracy"] / report["strong_accuracy"]
    assert quality_share == pytest.approx(0.95, abs=0.02)
    # It got there by escalating part of the traffic, not all of it.
    assert 0.2 < report["strong_call_share"] < 0.8
    assert report["usd_per_1k"] < 0.8 * report["strong_only_usd_per_1k"]
