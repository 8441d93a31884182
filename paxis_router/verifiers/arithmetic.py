"""ArithmeticVerifier: re-checks the calculations a worker wrote and wants a final answer."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from paxis_router.types import Verdict
from paxis_router.verifiers._arith import find_checks

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion

_NUMBER = r"[-−]?\s*\d[\d,]*(?:\.\d+)?"
_WORKING_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_MAX_NUMBER_CHARS = 40
_FINAL_ANSWER = re.compile(
    r"(?:####|\\boxed\{|\banswer\b(?:\s+is)?\s*:?|\banswer\s+is\b)"  # the markers
    r"[\s*_:$\\{]*"  # markdown, currency, braces between marker and number
    rf"(?P<number>{_NUMBER})",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Calculation:
    """One calculation found in an answer.

    ``lhs`` is the exact value of the written expression, ``rhs`` the written result.
    """

    text: str
    lhs: Fraction
    rhs: Fraction
    ok: bool


def check_calculations(
    text: str, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9
) -> tuple[Calculation, ...]:
    """Every checkable calculation in ``text``: GSM8K ``<<a*b=c>>`` annotations and plain
    ``a op b = c`` statements (chains, commas, decimals, ``$``, ``%``, parentheses).

    Example:
        >>> [(c.text, c.ok) for c in check_calculations("3 x 60 = 180, then 180 + 5 = 186")]
        [('3 x 60 = 180', True), ('180 + 5 = 186', False)]
    """
    return tuple(
        Calculation(c.text, c.lhs, c.rhs, c.ok)
        for c in find_checks(text, rel_tol=rel_tol, abs_tol=abs_tol)
    )


def find_final_answer(text: str) -> str | None:
    """The last final answer stated in ``text`` (``#### 42``, ``The answer is 42``,
    ``answer: 42``, ``\\boxed{42}``), commas and spaces removed; None when there is none.

    Example:
        >>> find_final_answer("5 + 5 = 10\\n#### 1,010")
        '1010'
    """
    found = None
    for match in _FINAL_ANSWER.finditer(text):
        found = re.sub(r"[\s,]", "", match.group("number")).replace("−", "-")
    return found


class ArithmeticVerifier:
    """Checks the arithmetic in a worker's answer and that it states a final answer.

    Passes when every checkable calculation is right (within ``rel_tol``/``abs_tol``, or the
    exact value rounded to the written decimals) and, if ``require_final_answer``, a final
    answer is present. With ``require_supported_answer``, an answer that shows calculations
    must also reach its final answer somewhere in them (the number appears before the final
    answer marker, or is the value of a calculation). ``score`` is the share of checked
    calculations that are right (None when none could be checked). Evaluation is exact and
    safe (an ``ast`` whitelist, never ``eval``); dates, times, ratios, labels and expressions
    with units or variables are not checked.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> v = ArithmeticVerifier()
        >>> answer = Completion("She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\\n#### 9", "m")
        >>> asyncio.run(v.verify(ChatRequest.from_text("eggs?"), answer)).passed
        True
    """

    def __init__(
        self,
        *,
        require_final_answer: bool = True,
        require_supported_answer: bool = True,
        rel_tol: float = 1e-6,
        abs_tol: float = 1e-9,
        name: str = "arithmetic",
    ):
        if not (0 <= rel_tol < math.inf and 0 <= abs_tol < math.inf):
            raise ValueError(
                f"tolerances must be finite and >= 0, got rel_tol={rel_tol}, abs_tol={abs_tol}"
            )
        self.name = name
        self.require_final_answer = require_final_answer
        self.require_supported_answer = require_supported_answer
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        calcs = check_calculations(completion.content, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        wrong = [c for c in calcs if not c.ok]
        score = (len(calcs) - len(wrong)) / len(calcs) if calcs else None
        problems: list[str] = []
        if wrong:
            shown = "; ".join(f"{c.text!r} (left side is {_show(c.lhs)})" for c in wrong[:3])
            more = f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""
            problems.append(f"{len(wrong)} of {len(calcs)} calculation(s) wrong: {shown}{more}")
        final = find_final_answer(completion.content)
        if final is None and self.require_final_answer:
            problems.append(
                "no final answer (expected e.g. '#### 42', 'The answer is 42', 'answer: 42' "
                "or \\boxed{42})"
            )
        elif (
            final is not None
            and calcs
            and self.require_supported_answer
            and not _supported(completion.content, final, calcs)
        ):
            problems.append(
                f"final answer {final} appears nowhere in the working before it; the "
                "calculations do not reach it"
            )
        if problems:
            return Verdict(self.name, False, score, "; ".join(problems))
        checked = f"{len(calcs)} calculation(s) right" if calcs else "no calculations to check"
        answer = f", final answer {final}" if final is not None else ""
        return Verdict(self.name, True, score, f"{checked}{answer}")


def _supported(text: str, final: str, calcs: tuple[Calculation, ...]) -> bool:
    """True when the final answer's value is a number written before the first final-answer
    marker, or the value of a calculation."""
    try:
        value = abs(Fraction(final))
    except (ValueError, ZeroDivisionError):
        return True  # not a plain number: nothing to compare
    marker = _FINAL_ANSWER.search(text)
    working = text[: marker.start()] if marker else text
    seen = {abs(c.lhs) for c in calcs} | {abs(c.rhs) for c in calcs}
    for match in _WORKING_NUMBER.finditer(working):
        number = match.group().replace(",", "")
        if len(number) <= _MAX_NUMBER_CHARS:
            seen.add(Fraction(number))
    return value in seen


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"
