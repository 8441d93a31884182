from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.calibration.datasets import Example, load_examples, models_of, quality
from paxis_router.errors import ConfigError
from paxis_router.workers.replay import Outcome

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "routellm"
W = "mistralai/Mixtral-8x7B-Instruct-v0.1"
S = "gpt-4-1106-preview"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_gsm8k_csv_drops_contaminated_rows(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "gsm8k_responses.csv",
        ["prompt", "weak", "strong", "weak_response", "strong_response"],
        [["1+1?", "True", "True", "#### 2", "2"], ["2+2?", "False", "True", "#### 5", "4"]],
    )
    (tmp_path / "contaminated_prompts.jsonl").write_text(
        json.dumps({"eval_prompt": "1+1?", "eval_idx": 0}) + "\n"
    )
    examples = load_examples([tmp_path / "gsm8k_responses.csv"])
    assert [e.id for e in examples] == ["1"]
    assert examples[0].outcomes["weak"] == Outcome(
        "#### 5", correct=False, prompt_tokens=4, completion_tokens=3
    )
    assert examples[0].outcomes["strong"].correct is True


def test_mmlu_csv_takes_the_subject_and_drops_contaminated_one_folder_up(tmp_path: Path) -> None:
    (tmp_path / "responses").mkdir()
    _write_csv(
        tmp_path / "responses" / "mmlu_anatomy.csv",
        ["prompt", "weak", "strong"],
        [["Q1\nA. x\nAnswer:", "True", "False"], ["Q2\nAnswer:", "False", "True"]],
    )
    (tmp_path / "contaminated_prompts.jsonl").write_text(
        json.dumps({"eval_prompt": "Q2\nAnswer:"}) + "\n"
    )
    examples = load_examples([tmp_path / "responses"])
    assert [(e.prompt, e.group) for e in examples] == [("Q1\nA. x\nAnswer:", "anatomy")]
    assert quality(examples[0].outcomes["weak"]) == 1.0
    assert examples[0].outcomes["strong"].completion_tokens == 1


def test_mmlu_rejects_a_non_boolean_label(tmp_path: Path) -> None:
    _write_csv(tmp_path / "mmlu_x.csv", ["prompt", "weak"], [["Q", "yes"]])
    with pytest.raises(ConfigError, match=r"mmlu_x\.csv: weak: row 0: 'yes' is not True/False"):
        load_examples([tmp_path / "mmlu_x.csv"])


def test_mt_bench_averages_turn_scores_and_quotes_the_first_answer(tmp_path: Path) -> None:
    questions = [
        {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
        {"question_id": 82, "category": "math", "turns": ["Leaked?", "x"]},
    ]
    (tmp_path / "question.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    (tmp_path / "contaminated_prompts.jsonl").write_text(json.dumps({"eval_prompt": "Leaked?"}))
    quote = "[The Start of Assistant's Answer]\nRoses are red.\n[The End of Assistant's Answer]"
    rows = [
        {"question_id": 81, "model": "w", "turn": 1, "score": 6, "user_prompt": quote},
        {"question_id": 81, "model": "w", "turn": 2, "score": 8, "user_prompt": ""},
        {"question_id": 81, "model": "s", "turn": 1, "score": 9, "user_prompt": ""},
        {"question_id": 81, "model": "s", "turn": 2, "score": -1, "user_prompt": ""},
        {"question_id": 82, "model": "w", "turn": 1, "score": 1, "user_prompt": ""},
    ]
    path = tmp_path / "judgements.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (example,) = load_examples([path])
    assert (example.id, example.prompt, example.group) == ("81", "Write a poem.", "writing")
    assert example.outcomes["w"].score == 7.0
    assert example.outcomes["w"].response == "Roses are red."
    assert example.outcomes["s"].score == 9.0  # the -1 (no rating) is skipped


def test_generic_jsonl_reads_every_field(tmp_path: Path) -> None:
    row = {
        "id": "q1",
        "prompt": "2+2?",
        "group": "math",
        "tiers": {
            "w": {"response": "5", "correct": False, "prompt_tokens": 3, "completion_tokens": 1},
            "s": {"response": "4", "score": 0.9, "cost_usd": "0.0012"},
        },
    }
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(row) + "\n\n")
    (example,) = load_examples([path])
    assert example == Example(
        "q1",
        "2+2?",
        {
            "w": Outcome("5", False, None, 3, 1),
            "s": Outcome("4", None, 0.9, 4, 1, Decimal("0.0012")),
        },
        "math",
    )
    assert models_of([example]) == ["w", "s"]


def test_generic_jsonl_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "prompt": "p", "tiers": {"w": {"response": "x"}}}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl: line 1: .*correct' or 'score"):
        load_examples([path])


def test_unknown_format_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such data file"):
        load_examples([tmp_path / "missing.csv"])
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ConfigError, match="unknown data format"):
        load_examples([tmp_path / "x.txt"])


def test_multi_file_loads_prefix_ids(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _write_csv(tmp_path / f"mmlu_{name}.csv", ["prompt", "w"], [["Q", "True"]])
    examples = load_examples([tmp_path / "mmlu_a.csv", tmp_path / "mmlu_b.csv"])
    assert [e.id for e in examples] == ["mmlu_a:0", "mmlu_b:0"]


def test_shipped_routellm_files_match_the_paper_after_decontamination() -> None:
    gsm8k = load_examples([DATA / "gsm8k_responses.csv"])
    mt_bench = load_examples([DATA / "mt_bench" / "judgements.jsonl"])
    assert len(gsm8k) == 1319 - 12
    assert len(mt_bench) == 80 - 8
    assert models_of(gsm8k) == [W, S]
    assert sum(quality(e.outcomes[W]) for e in gsm8k) / len(gsm8k) == pytest.approx(
        0.6373, abs=1e-4
    )


def test_write_jsonl_round_trips_every_format(tmp_path: Path) -> None:
    from decimal import Decimal

    from paxis_router.calibration.datasets import write_jsonl
    from paxis_router.workers.replay import Outcome

    examples = [
        Example("a", "2+2?", {"w": Outcome("4", True, None, 3, 1, Decimal("0.0001"))}, "math"),
        Example("b", "Résumé «x»\u2028next", {"w": Outcome("", None, 7.5, 4, 0, None)}, ""),
    ]
    path = write_jsonl(tmp_path / "out.jsonl", examples)
    assert load_examples([path]) == examples
    # Other writers may leave U+2028 unescaped (JSON allows it): still one line per example.
    raw = tmp_path / "raw.jsonl"
    raw.write_text(path.read_text().replace("\\u2028", "\u2028"), encoding="utf-8")
    assert load_examples([raw]) == examples
