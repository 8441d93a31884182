"""Find and evaluate the calculations written in a free-text answer (ArithmeticVerifier's engine).

Two sources of calculations:

* GSM8K-style annotations ``<<48/2=24>>``;
* plain statements ``a op b = c`` (chains ``a = b = c`` too), found by tokenizing each line and
  taking the run of arithmetic tokens on each side of an ``=``.

The rules lean towards *not* flagging: a statement is only checked when both sides are pure
arithmetic (numbers, ``+ - * / x × ÷ ^``, parentheses, ``$``, ``%``, thousands commas) and at
least one side has an operator. Labels (``Day 1 = ...``), units inside expressions
(``3 hours * 2 = 6``), dates, times, ratios and variables are skipped. Evaluation is exact
(``Fraction``) through a whitelist walk of the ``ast`` — never ``eval``.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

TokenKind = Literal["num", "op", "lp", "rp", "eq", "word", "other"]

_MAX_EXPONENT = 64
_MAX_MAGNITUDE = Fraction(10) ** 30
_MAX_TOKENS = 80
_MAX_NUMBER_CHARS = 40

_ANNOTATION = re.compile(r"<<([^<>]{1,300}=[^<>]{1,300})>>")

_LATEX = (
    (re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"((\1)/(\2))"),
    (re.compile(r"\\(?:times|cdot)\b"), " * "),
    (re.compile(r"\\div\b"), " / "),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\([$%*_])"), r"\1"),
    (re.compile(r"\\[()\[\]]"), " "),
    (re.compile(r"\\(?:left|right)\b"), ""),
)

_TOKEN = re.compile(
    r"""
     (?P<skip>\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}|\d+(?::\d+)+)  # dates, times, ratios
    |(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    |(?P<pct>%)
    |(?P<dollar>\$)
    |(?P<bold>\*\*)
    |(?P<op>[-+*/^×÷·−])
    |(?P<lp>\()
    |(?P<rp>\))
    |(?P<eq>(?<![<>=!])=(?![=>]))
    |(?P<ws>\s+)
    |(?P<word>[^\W\d]+)
    |(?P<other>.)
    """,
    re.VERBOSE,
)

_OP_TEXT = {"×": "*", "·": "*", "÷": "/", "−": "-", "^": "**"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    end: int
    value: Fraction | None = None
    percent: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    """One checked calculation: its text, both sides' values, and whether they agree."""

    text: str
    lhs: Fraction
    rhs: Fraction
    ok: bool


def normalize(text: str) -> str:
    """Rewrite the LaTeX spellings of arithmetic into plain text."""
    for pattern, repl in _LATEX:
        text = pattern.sub(repl, text)
    return text


def tokenize(line: str) -> list[Token]:
    """Tokens of one line, whitespace dropped; ``$`` dropped; ``%`` folded into its number."""
    raw: list[Token] = []
    for match in _TOKEN.finditer(line):
        group = match.lastgroup
        text = match.group()
        start, end = match.span()
        if group in ("ws", "dollar"):
            continue
        if group == "num" and len(text) > _MAX_NUMBER_CHARS:
            raw.append(Token("other", text, start, end))  # not a quantity anyone computes with
        elif group == "num":
            raw.append(Token("num", text, start, end, Fraction(text.replace(",", ""))))
        elif group == "pct":
            if raw and raw[-1].kind == "num" and raw[-1].end == start:
                last = raw[-1]
                raw[-1] = Token("num", last.text + "%", last.start, end, last.value, True)
            else:
                raw.append(Token("other", text, start, end))
        elif group == "op":
            raw.append(Token("op", _OP_TEXT.get(text, text), start, end))
        elif group in ("lp", "rp", "eq", "word"):
            raw.append(Token(group, text, start, end))  # type: ignore[arg-type]  # group names are TokenKinds
        else:  # skip, bold, other
            raw.append(Token("other", text, start, end))
    return _times_words(raw)


def _times_words(tokens: list[Token]) -> list[Token]:
    """A lone ``x``/``X`` between operands is multiplication (``3 x 60``); elsewhere a word."""
    out = list(tokens)
    for i, tok in enumerate(tokens):
        if tok.kind == "word" and tok.text in ("x", "X") and 0 < i < len(tokens) - 1:
            before, after = tokens[i - 1], tokens[i + 1]
            if before.kind in ("num", "rp") and after.kind in ("num", "lp"):
                out[i] = Token("op", "*", tok.start, tok.end)
    return out


def evaluate(tokens: list[Token], *, percent_scale: bool = True) -> Fraction | None:
    """The exact value of an arithmetic token run, or None when it is not one (or too big)."""
    if not tokens or len(tokens) > _MAX_TOKENS:
        return None
    names: dict[str, Fraction] = {}
    parts: list[str] = []
    for tok in tokens:
        if tok.kind == "num":
            assert tok.value is not None
            name = f"n{len(names)}"
            names[name] = tok.value / 100 if tok.percent and percent_scale else tok.value
            parts.append(name)
        elif tok.kind in ("op", "lp", "rp"):
            parts.append(tok.text)
        else:
            return None
    try:
        tree = ast.parse(" ".join(parts), mode="eval")
    except SyntaxError:
        return None
    try:
        return _walk(tree.body, names)
    except (ZeroDivisionError, _Unsupported, OverflowError):
        return None


class _Unsupported(Exception):
    """The expression uses something the safe walker does not evaluate."""


def _walk(node: ast.expr, names: dict[str, Fraction]) -> Fraction:
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _walk(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left = _walk(node.left, names)
        right = _walk(node.right, names)
        result = _binop(node.op, left, right)
        if abs(result) > _MAX_MAGNITUDE:
            raise _Unsupported
        return result
    raise _Unsupported


def _binop(op: ast.operator, left: Fraction, right: Fraction) -> Fraction:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    if isinstance(op, ast.Div):
        return left / right
    if isinstance(op, ast.Pow):
        if right.denominator != 1 or abs(right) > _MAX_EXPONENT:
            raise _Unsupported
        return left ** int(right)
    raise _Unsupported


def values(tokens: list[Token]) -> set[Fraction]:
    """The values a run may mean: ``%`` read as /100 and, when present, also as a bare number
    (``50/200 * 100 = 25%``), plus ``a ± b%`` as ``a * (1 ± b/100)``."""
    out: set[Fraction] = set()
    scaled = evaluate(tokens)
    if scaled is not None:
        out.add(scaled)
    grouped = _group_fractions(tokens)
    if grouped is not None:
        value = evaluate(grouped)
        if value is not None:
            out.add(value)
    if any(t.percent for t in tokens):
        bare = evaluate(tokens, percent_scale=False)
        if bare is not None:
            out.add(bare)
        kinds = [t.kind for t in tokens]
        if kinds == ["num", "op", "num"] and tokens[2].percent and tokens[1].text in "+-":
            a, b = tokens[0].value, tokens[2].value
            assert a is not None and b is not None
            sign = 1 if tokens[1].text == "+" else -1
            out.add(a * (1 + sign * b / 100))
    return out


def _group_fractions(tokens: list[Token]) -> list[Token] | None:
    """``12.8 / 2/5`` read as ``12.8 / (2/5)``: a fraction written without spaces is one number.
    None when there is no such fraction."""
    out: list[Token] = []
    found = False
    i = 0
    while i < len(tokens):
        if i + 2 < len(tokens) and _glued_fraction(tokens[i], tokens[i + 1], tokens[i + 2]):
            a, slash, b = tokens[i : i + 3]
            out += [Token("lp", "(", a.start, a.start), a, slash, b, Token("rp", ")", b.end, b.end)]
            found = True
            i += 3
        else:
            out.append(tokens[i])
            i += 1
    return out if found else None


def _glued_fraction(a: Token, slash: Token, b: Token) -> bool:
    return (
        a.kind == "num"
        and b.kind == "num"
        and slash.text == "/"
        and not (a.percent or b.percent)
        and a.end == slash.start
        and slash.end == b.start
    )


def _decimals(tokens: list[Token]) -> int | None:
    """Decimal places of a single-number run (its rounding unit), else None."""
    if len(tokens) != 1 or tokens[0].kind != "num":
        return None
    text = tokens[0].text.rstrip("%")
    return len(text.split(".", 1)[1]) if "." in text else 0


def agree(
    lhs: set[Fraction],
    rhs: set[Fraction],
    rhs_decimals: int | None,
    *,
    rel_tol: float,
    abs_tol: float,
) -> bool:
    """True when some reading of each side agrees within tolerance. When the exact value is
    not a whole number, a written result may be it rounded to the result's own decimal places
    (``10/3 = 3.33``, ``7/4 = 2``) or, with decimals, truncated (``2/3 = 0.66``)."""
    for left in lhs:
        for right in rhs:
            diff = abs(left - right)
            if diff <= max(Fraction(abs_tol), Fraction(rel_tol) * max(abs(left), abs(right))):
                return True
            if rhs_decimals is None or left.denominator == 1:
                continue
            unit = Fraction(1, 10**rhs_decimals)
            if diff < unit / 2 or (rhs_decimals > 0 and diff < unit and abs(right) < abs(left)):
                return True
    return False


def _has_op(tokens: list[Token]) -> bool:
    return any(t.kind == "op" for t in tokens)


def _left_run(tokens: list[Token], eq: int) -> list[Token] | None:
    """The arithmetic tokens just left of ``tokens[eq]``, or None when the left side is not a
    checkable expression (it runs into words, or is a label like ``Day 1``)."""
    i = eq
    while i > 0 and tokens[i - 1].kind in ("num", "op", "lp", "rp"):
        i -= 1
    run = tokens[i:eq]
    if len(run) > _MAX_TOKENS:
        return None
    before = tokens[i - 1] if i > 0 else None
    after_word = before is not None and before.kind == "word"
    if run and run[0].kind == "op":
        if after_word:
            return None  # "3 hours * 2 = 6": the expression continues into words
        # Strip bullets and markdown ("- 5 + 3", "* 5 + 3"), keeping a glued unary minus.
        while run and run[0].kind == "op":
            glued = len(run) > 1 and run[0].text == "-" and run[0].end == run[1].start
            if glued:
                break
            run = run[1:]
    if after_word and not _has_op(run):
        return None  # a label: "Day 1 = 5 + 3 = 8"
    while run and run[0].kind == "lp" and _depth(run) > 0:
        run = run[1:]  # "(so 3 + 4 = 7)"
    if run and evaluate(run) is None:
        # "1) 5 + 3 = 8": an enumerator's ")" is not part of the expression.
        for i, tok in enumerate(run[:-1]):
            rest = run[i + 1 :]
            if tok.kind == "rp" and rest[0].kind in ("num", "lp") and evaluate(rest) is not None:
                return rest
    return run or None


def _right_run(tokens: list[Token], eq: int) -> list[Token] | None:
    """The arithmetic tokens just right of ``tokens[eq]``, trailing dangling operators and
    unmatched ``)`` removed."""
    j = eq + 1
    while j < len(tokens) and tokens[j].kind in ("num", "op", "lp", "rp"):
        j += 1
    run = tokens[eq + 1 : j]
    if len(run) > _MAX_TOKENS:
        return None
    after = tokens[j] if j < len(tokens) else None
    if (
        run
        and after is not None
        and after.kind == "word"
        and (run[-1].kind == "op" or (run[-1].kind == "num" and after.start == run[-1].end))
    ):
        return None  # "= 40 * Total students", "= 100 - 9X": it continues into words
    while run and (run[-1].kind == "op" or (run[-1].kind == "rp" and _depth(run) < 0)):
        run = run[:-1]
    if run and evaluate(run) is None:
        # "= 8 (rounded)", "= 20 (5 + 15)": a parenthesis after the result is a remark.
        for i in range(len(run) - 1, 0, -1):
            if run[i].kind == "lp" and evaluate(run[:i]) is not None:
                return run[:i]
    return run or None


def _depth(run: list[Token]) -> int:
    return sum(1 for t in run if t.kind == "lp") - sum(1 for t in run if t.kind == "rp")


def _continues(lhs: set[Fraction], right: list[Token]) -> bool:
    """``3 * 60 = 180 - 20 = 160``: the right side starts from the left side's value and goes
    on computing (a running total, not a wrong statement)."""
    if len(right) < 3 or right[0].kind != "num" or right[1].kind != "op":
        return False
    return right[0].value in lhs


def find_checks(text: str, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> list[Check]:
    """Every calculation in ``text`` that can be checked, in order of appearance."""
    text = normalize(text)
    checks: list[Check] = []
    for match in _ANNOTATION.finditer(text):
        sides = [tokenize(side) for side in match.group(1).split("=")]
        for left, right in itertools.pairwise(sides):
            lhs, rhs = values(left), values(right)
            if lhs and rhs:
                ok = agree(lhs, rhs, _decimals(right), rel_tol=rel_tol, abs_tol=abs_tol)
                if not ok and _continues(lhs, right):
                    continue
                checks.append(Check(match.group(0), min(lhs), min(rhs), ok))
    plain = _ANNOTATION.sub("", text)
    for line in plain.splitlines():
        checks.extend(_line_checks(line, rel_tol=rel_tol, abs_tol=abs_tol))
    return checks


def _line_checks(line: str, *, rel_tol: float, abs_tol: float) -> list[Check]:
    tokens = tokenize(line)
    out: list[Check] = []
    chained = False  # the left side is the right side of a checked statement: "a + b = c = d"
    for eq, tok in enumerate(tokens):
        if tok.kind != "eq":
            continue
        left = _left_run(tokens, eq)
        right = _right_run(tokens, eq)
        in_chain, chained = chained, False
        if left is None or right is None or not (in_chain or _has_op(left) or _has_op(right)):
            continue
        next_index = eq + 1 + len(right)
        chained = next_index < len(tokens) and tokens[next_index].kind == "eq"
        lhs, rhs = values(left), values(right)
        if not lhs or not rhs:
            continue
        ok = agree(lhs, rhs, _decimals(right), rel_tol=rel_tol, abs_tol=abs_tol)
        if not ok and _continues(lhs, right):
            continue
        start = left[0].start
        if start > 0 and line[start - 1] == "$":
            start -= 1
        statement = line[start : right[-1].end].strip()
        out.append(Check(statement, min(lhs), min(rhs), ok))
    return out
