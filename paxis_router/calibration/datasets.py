"""Labelled outcomes for calibration and replay: RouteLLM's files as they are, and generic JSONL.

Every reader returns :class:`Example` rows: one query with the recorded
:class:`~paxis_router.workers.replay.Outcome` of each model. Formats, chosen by
:func:`load_examples` from the file:

- RouteLLM GSM8K (``gsm8k_responses.csv``: ``prompt``, one boolean column per model and
  ``<model>_response``); contaminated prompts listed in ``contaminated_prompts.jsonl`` beside
  it are dropped, as the paper does.
- RouteLLM MMLU (``mmlu_<subject>.csv``: ``prompt`` and one boolean column per model; or a folder
  of them); the subject is the example's ``group``; no responses. Contaminated prompts listed in
  ``contaminated_prompts.jsonl`` beside the file or one folder up are dropped.
- MT-Bench judgements (``judgements.jsonl`` in FastChat's llm_judge format, ``question.jsonl``
  beside it): one example per question, ``score`` = the mean GPT-4 judge score (1-10) over its
  two turns, ``response`` = the model's first-turn answer; ``group`` = the category.
- Generic JSONL, one object per line::

      {"id": "q1", "prompt": "...", "group": "optional",
       "tiers": {"MODEL": {"response": "...", "correct": true,      # or "score": 0.8
                           "prompt_tokens": 12, "completion_tokens": 40, "cost_usd": "0.0004"}}}

  ``response``, the token counts and ``cost_usd`` are optional; ``correct`` or ``score`` is
  required. Tokens missing from a file are counted with
  :func:`paxis_router.workers.replay.count_tokens`.

Example:
    >>> import json, pathlib, tempfile
    >>> row = {"id": "a", "prompt": "2+2?", "tiers": {"w": {"response": "4", "correct": True}}}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_text(json.dumps(row) + "\\n")
    >>> [e.outcomes["w"].correct for e in load_examples([path])]
    [True]
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ConfigError
from paxis_router.workers.replay import (
    Outcome,
    count_tokens,
    drop_ids,
    load_routellm_gsm8k,
    routellm_contaminated_ids,
    routellm_prompts,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Example", "holdout_split", "load_examples", "models_of", "quality"]

_ANSWER = re.compile(
    r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", re.S
)


@dataclass(frozen=True)
class Example:
    """One query with each model's recorded outcome.

    ``id`` is unique within a load (prefixed by the file for multi-file loads); ``group`` is the
    MMLU subject, the MT-Bench category or the JSONL ``group`` (``""`` when none).
    """

    id: str
    prompt: str
    outcomes: Mapping[str, Outcome]
    group: str = ""


def quality(outcome: Outcome) -> float:
    """An outcome's quality: 1.0 / 0.0 for a correctness label, else its score.

    Example:
        >>> quality(Outcome("", correct=False)), quality(Outcome("", score=7.5))
        (0.0, 7.5)
    """
    if outcome.correct is not None:
        return 1.0 if outcome.correct else 0.0
    if outcome.score is not None:
        return outcome.score
    raise ValueError("the outcome has neither a correctness label nor a score")


def models_of(examples: Sequence[Example]) -> list[str]:
    """The models every example has an outcome for, in the first example's order."""
    if not examples:
        return []
    common = set(examples[0].outcomes)
    for example in examples[1:]:
        common &= set(example.outcomes)
    return [m for m in examples[0].outcomes if m in common]


def holdout_split(
    examples: Sequence[Example], fraction: float, *, by_group: bool = False, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(fit, held out): ``fraction`` of the rows held out at random (seeded), or with
    ``by_group`` ``fraction`` of the groups (MMLU subjects) held out whole. A prompt is never
    on both sides (it would make the held-out side partly in-sample: MMLU repeats 92
    questions, some in two subjects): at random, rows with the same prompt go together; by
    group, a held-out group's row whose prompt is also in a fitted group is left out of the
    held-out side (it is fitted on there). Both keep file order.

    Example:
        >>> rows = [Example(str(i), f"q{i}", {}, "ab"[i % 2]) for i in range(10)]
        >>> fit, held = holdout_split(rows, 0.5, by_group=True)
        >>> len(fit), len(held), {e.group for e in held} & {e.group for e in fit}
        (5, 5, set())
    """
    import random

    from paxis_router.calibration.fingerprint import row_key

    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the held-out share must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    keys = [row_key(e.prompt) for e in examples]
    if by_group:
        groups = sorted({e.group for e in examples})
        if len(groups) < 2:
            raise ConfigError("holding out whole groups needs at least 2 groups")
        rng.shuffle(groups)
        count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        held_groups = set(groups[:count])
        fitted_keys = {k for k, e in zip(keys, examples, strict=True) if e.group not in held_groups}
        fit = [e for e in examples if e.group not in held_groups]
        held_out = [
            e
            for k, e in zip(keys, examples, strict=True)
            if e.group in held_groups and k not in fitted_keys
        ]
        return fit, held_out
    unique = list(dict.fromkeys(keys))
    if len(unique) < 2:
        raise ConfigError("holding out rows needs at least 2 distinct prompts")
    count = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    held_keys = set(rng.sample(unique, count))
    fit = [e for k, e in zip(keys, examples, strict=True) if k not in held_keys]
    return fit, [e for k, e in zip(keys, examples, strict=True) if k in held_keys]


def load_examples(paths: Iterable[str | Path]) -> list[Example]:
    """Read every file (or folder of MMLU CSVs), format chosen per file; see the module doc.

    Raises:
        ConfigError: naming the file for an unreadable or malformed file.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise ConfigError("no *.csv files in this folder", source=str(path))
            files.extend(found)
        else:
            files.append(path)
    out: list[Example] = []
    for path in files:
        examples = _read_one(path)
        if len(files) > 1:
            examples = [
                Example(f"{path.stem}:{e.id}", e.prompt, e.outcomes, e.group) for e in examples
            ]
        out.extend(examples)
    return out


def _read_one(path: Path) -> list[Example]:
    if not path.is_file():
        raise ConfigError("no such data file", source=str(path))
    if path.suffix == ".jsonl":
        if path.name.startswith("judgements"):
            return _read_mt_bench(path)
        return _read_jsonl(path)
    if path.suffix == ".csv":
        header = _csv_header(path)
        if any(c.endswith("_response") for c in header):
            return _read_gsm8k(path, header)
        return _read_mmlu(path, header)
    raise ConfigError(
        "unknown data format: expected a RouteLLM .csv, judgements.jsonl or generic .jsonl",
        source=str(path),
    )


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from exc
    if "prompt" not in header:
        raise ConfigError(f"no 'prompt' column (columns: {header})", source=str(path))
    return header


def _contaminated_prompts(path: Path) -> set[str]:
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "contaminated_prompts.jsonl"
        if candidate.is_file():
            try:
                lines = candidate.read_text(encoding="utf-8").split("\n")
                return {str(json.loads(line)["eval_prompt"]) for line in lines if line.strip()}
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read: {exc!r}", source=str(candidate)) from exc
    return set()


def _read_gsm8k(path: Path, header: list[str]) -> list[Example]:
    models = [c for c in header if c != "prompt" and not c.endswith("_response")]
    prompts = routellm_prompts(path)
    per_model = {m: load_routellm_gsm8k(path, m) for m in models}
    contaminated = path.parent / "contaminated_prompts.jsonl"
    if contaminated.is_file():
        dropped = routellm_contaminated_ids(contaminated)
        per_model = {m: drop_ids(o, dropped) for m, o in per_model.items()}
    ids = list(per_model[models[0]]) if models else []
    return [Example(i, prompts[i], {m: per_model[m][i] for m in models}) for i in ids]


def _read_mmlu(path: Path, header: list[str]) -> list[Example]:
    models = [c for c in header if c != "prompt"]
    subject = path.stem.removeprefix("mmlu_")
    contaminated = _contaminated_prompts(path)
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            prompt = row["prompt"]
            if prompt in contaminated:
                continue
            tokens = count_tokens(prompt)
            outcomes = {}
            for model in models:
                label = row[model].strip()
                if label not in ("True", "False"):
                    raise ConfigError(
                        f"row {i}: {label!r} is not True/False", source=str(path), field=model
                    )
                # MMLU answers are one letter: one completion token.
                outcomes[model] = Outcome("", label == "True", None, tokens, 1)
            out.append(Example(str(i), prompt, outcomes, subject))
    return out


def _read_mt_bench(path: Path) -> list[Example]:
    questions_path = path.parent / "question.jsonl"
    try:
        questions = {
            int(q["question_id"]): q
            for q in (
                json.loads(x) for x in questions_path.read_text("utf-8").split("\n") if x.strip()
            )
        }
        judgements = [json.loads(x) for x in path.read_text("utf-8").split("\n") if x.strip()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read MT-Bench files: {exc!r}", source=str(path)) from exc
    contaminated = _contaminated_prompts(path)
    scores: dict[tuple[int, str], list[float]] = {}
    answers: dict[tuple[int, str], str] = {}
    for j in judgements:
        key = (int(j["question_id"]), str(j["model"]))
        score = float(j["score"])
        if score < 1:  # FastChat writes -1 when the judge gave no rating
            continue
        scores.setdefault(key, []).append(score)
        if int(j["turn"]) == 1:
            found = _ANSWER.search(str(j.get("user_prompt", "")))
            answers[key] = found.group(1) if found else ""
    out = []
    for qid, question in sorted(questions.items()):
        turns = [str(t) for t in question["turns"]]
        if turns[0] in contaminated:
            continue
        outcomes = {}
        for (q, model), values in scores.items():
            if q == qid:
                response = answers.get((q, model), "")
                outcomes[model] = Outcome(
                    response,
                    None,
                    sum(values) / len(values),
                    sum(count_tokens(t) for t in turns),
                    count_tokens(response),
                )
        if outcomes:
            out.append(Example(str(qid), turns[0], outcomes, str(question.get("category", ""))))
    return out


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write ``examples`` in the generic JSONL format :func:`load_examples` reads back (e.g. a
    RouteLLM file, or a split of one, for ``paxis calibrate --data`` / ``paxis replay``).

    Example:
        >>> import pathlib, tempfile
        >>> from paxis_router.workers.replay import Outcome
        >>> ex = Example("q1", "2+2?", {"w": Outcome("4", True, None, 3, 1, None)}, "math")
        >>> out = write_jsonl(pathlib.Path(tempfile.mkdtemp()) / "x.jsonl", [ex])
        >>> load_examples([out])[0] == ex
        True
    """
    lines = []
    for e in examples:
        tiers: dict[str, dict[str, object]] = {}
        for model, o in e.outcomes.items():
            tier: dict[str, object] = {"response": o.response}
            if o.prompt_tokens is not None:
                tier["prompt_tokens"] = o.prompt_tokens
            if o.completion_tokens is not None:
                tier["completion_tokens"] = o.completion_tokens
            if o.correct is not None:
                tier["correct"] = o.correct
            if o.score is not None:
                tier["score"] = o.score
            if o.cost_usd is not None:
                tier["cost_usd"] = str(o.cost_usd)
            tiers[model] = tier
        row = {"id": e.id, "prompt": e.prompt, "group": e.group, "tiers": tiers}
        lines.append(json.dumps(row))
    out = Path(path)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def _read_jsonl(path: Path) -> list[Example]:
    out = []
    try:
        # JSON Lines end at "\n" only: str.splitlines would also split inside strings that hold
        # U+2028, U+0085 and the like, which JSON allows unescaped.
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            row = json.loads(line)
            prompt = str(row["prompt"])
            tiers = row["tiers"]
            outcomes = {str(m): _jsonl_outcome(prompt, t) for m, t in tiers.items()}
            out.append(Example(str(row.get("id", n)), prompt, outcomes, str(row.get("group", ""))))
        except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as exc:
            raise ConfigError(
                f"{where}: {exc!r}; expected {{id, prompt, tiers: {{MODEL: {{response, correct "
                "or score, prompt_tokens?, completion_tokens?, cost_usd?}}}",
                source=str(path),
            ) from exc
    return out


def _jsonl_outcome(prompt: str, tier: Mapping[str, Any]) -> Outcome:  # Any: parsed JSON
    correct = tier.get("correct")
    score = tier.get("score")
    if correct is None and score is None:
        raise ValueError("a tier needs 'correct' or 'score'")
    response = str(tier.get("response", ""))
    cost = tier.get("cost_usd")
    prompt_tokens = tier.get("prompt_tokens")
    completion_tokens = tier.get("completion_tokens")
    return Outcome(
        response=response,
        correct=None if correct is None else bool(correct),
        score=None if score is None else float(score),
        prompt_tokens=int(prompt_tokens) if prompt_tokens is not None else count_tokens(prompt),
        completion_tokens=int(completion_tokens)
        if completion_tokens is not None
        else count_tokens(response),
        cost_usd=None if cost is None else Decimal(str(cost)),
    )
