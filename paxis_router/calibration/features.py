"""Signals a cascade can read from a query and the worker's answer, as named floats.

Pure text functions (regex, and the arithmetic verifier's exact calculation checker; no model),
so the Router can compute them at run time exactly as ``paxis calibrate`` did when it fitted the
scorer. The names are the scorer's feature spec: a scorer file lists the ones it uses, and
``answer_features`` always returns every name in ``FEATURE_NAMES``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from paxis_router.verifiers.arithmetic import check_calculations

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.types import Verdict

_NUMBER = re.compile(r"(?<![\w.])-?\$?\d[\d,]*(?:\.\d+)?")
_FINAL = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")
_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_HEDGES = (
    "however",
    "assum",
    "approximately",
    "round",
    "can't",
    "cannot",
    "not possible",
    "impossible",
    "actually",
    "wait",
    "mistake",
    "not enough information",
    "doesn't make sense",
    "does not make sense",
    "unclear",
    "let's say",
    "estimate",
    "about ",
    "partial",
)
_QUANT_WORDS = (
    "half",
    "twice",
    "double",
    "triple",
    "third",
    "quarter",
    "fifth",
    "percent",
    "%",
    "each",
    "per",
    "every",
    "remaining",
    "rest",
    "more than",
    "less than",
    "fewer",
)

FEATURE_NAMES: tuple[str, ...] = (
    "has_final",
    "final_parsed",
    "final_is_integer",
    "final_negative",
    "final_log_magnitude",
    "final_in_question",
    "final_in_body",
    "final_is_last_body_number",
    "final_has_text",
    "n_final_markers",
    "n_annotations",
    "n_calcs",
    "n_calcs_wrong",
    "share_calcs_wrong",
    "any_calc_wrong",
    "n_body_decimals",
    "question_number_coverage",
    "n_question_numbers",
    "question_log_words",
    "question_quant_words",
    "question_has_decimal",
    "answer_log_words",
    "answer_lines",
    "answer_to_question_words",
    "hedges",
    "uses_variable",
    "truncated",
    "answer_has_question_mark",
    "verdicts_failed",
    "verdict_min_score",
    "verdicts_scored",
)


def _to_number(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers(text: str) -> list[float]:
    out = []
    for match in _NUMBER.finditer(text):
        value = _to_number(match.group(0))
        if value is not None:
            out.append(value)
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.01, 0.005 * abs(b))


def _final_answer(response: str) -> tuple[str | None, int]:
    finals = _FINAL.findall(response)
    if finals:
        return finals[-1].strip(), len(finals)
    for pattern in (_BOXED, _ANSWER_IS):
        found = pattern.findall(response)
        if found:
            return str(found[-1]).strip(), len(found)
    return None, 0


def answer_features(
    prompt: str, response: str, verdicts: Sequence[Verdict] = ()
) -> dict[str, float]:
    """Every feature in ``FEATURE_NAMES`` for one (query, worker answer) pair.

    Example:
        >>> f = answer_features("3 apples, buy 4. How many?", "3 + 4 = <<3+4=7>>7\\n#### 7")
        >>> f["has_final"], f["final_is_integer"], f["n_calcs_wrong"]
        (1.0, 1.0, 0.0)
    """
    final_text, n_finals = _final_answer(response)
    final_match = _NUMBER.search(final_text) if final_text else None
    final = _to_number(final_match.group(0)) if final_match else None
    body = response.split("####")[0] if "####" in response else response
    body_numbers = _numbers(_ANNOTATION.sub(" ", body))
    question_numbers = _numbers(prompt)

    annotations = _ANNOTATION.findall(response)
    calcs = check_calculations(response)
    wrong = sum(1 for c in calcs if not c.ok)

    covered = sum(1 for q in set(question_numbers) if any(_close(b, q) for b in body_numbers))
    lower_answer = response.lower()
    lower_question = prompt.lower()
    q_words = len(prompt.split())
    a_words = len(response.split())
    stripped = response.rstrip()
    failed = [v for v in verdicts if not v.passed]
    scores = [v.score for v in verdicts if v.score is not None]

    return {
        "has_final": float(final_text is not None),
        "final_parsed": float(final is not None),
        "final_is_integer": float(final is not None and final == int(final)),
        "final_negative": float(final is not None and final < 0),
        "final_log_magnitude": math.log10(1 + abs(final)) if final is not None else 0.0,
        "final_in_question": float(
            final is not None and any(_close(final, q) for q in question_numbers)
        ),
        "final_in_body": float(final is not None and any(_close(final, b) for b in body_numbers)),
        "final_is_last_body_number": float(
            final is not None and bool(body_numbers) and _close(final, body_numbers[-1])
        ),
        "final_has_text": float(
            final_text is not None and bool(re.search(r"[A-Za-z]", final_text))
        ),
        "n_final_markers": float(n_finals),
        "n_annotations": float(len(annotations)),
        "n_calcs": float(len(calcs)),
        "n_calcs_wrong": float(wrong),
        "share_calcs_wrong": wrong / len(calcs) if calcs else 0.0,
        "any_calc_wrong": float(wrong > 0),
        "n_body_decimals": float(sum(1 for b in body_numbers if b != int(b))),
        "question_number_coverage": covered / len(set(question_numbers))
        if question_numbers
        else 1.0,
        "n_question_numbers": float(len(question_numbers)),
        "question_log_words": math.log1p(q_words),
        "question_quant_words": float(sum(lower_question.count(w) for w in _QUANT_WORDS)),
        "question_has_decimal": float(any(q != int(q) for q in question_numbers)),
        "answer_log_words": math.log1p(a_words),
        "answer_lines": float(sum(1 for line in response.splitlines() if line.strip())),
        "answer_to_question_words": a_words / max(q_words, 1),
        "hedges": float(sum(lower_answer.count(h) for h in _HEDGES)),
        "uses_variable": float(bool(re.search(r"\b[xyn]\b\s*[=+*/-]|\blet\s+[xyn]\b", body))),
        "truncated": float(final_text is None and bool(stripped) and stripped[-1] not in ".!?)"),
        "answer_has_question_mark": float("?" in response),
        "verdicts_failed": float(len(failed)),
        "verdict_min_score": min(scores) if scores else 1.0,
        "verdicts_scored": float(len(scores)),
    }
