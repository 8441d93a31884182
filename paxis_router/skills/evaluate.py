"""Selection quality on labelled queries: recall@1, recall@5 and MRR.

A queries file is JSON Lines, one ``{"query": "...", "skill": "<skill id>"}`` per line. An optional
``"also": [<skill id>, ...]`` lists functional duplicates of the labelled skill that are accepted
as correct too (the best-ranked accepted id counts); the issue's format needs none.

Example:
    >>> from paxis_router.skills.library import SkillLibrary
    >>> from paxis_router.skills.model import Skill
    >>> lib = SkillLibrary([Skill(id="csv", name="csv", description="Merge CSV files."),
    ...                     Skill(id="pdf", name="pdf", description="Read PDF files.")])
    >>> evaluate(lib, [LabelledQuery("merge these csv files", "csv")])
    EvalResult(recall_at_1=1.0, recall_at_5=1.0, mrr=1.0, n=1)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from paxis_router.errors import SkillError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from paxis_router.skills.model import SkillSelector

#: Ranks beyond this count as "not found" for MRR.
MRR_DEPTH = 100


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    """A task, the id of the skill that should be chosen for it, and accepted duplicates."""

    query: str
    skill: str
    also: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Recall@1, recall@5 and mean reciprocal rank (ranks up to :data:`MRR_DEPTH`)."""

    recall_at_1: float
    recall_at_5: float
    mrr: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """The JSON keys ``recall_at_1``, ``recall_at_5``, ``mrr``, ``n``."""
        return asdict(self)


def read_queries(path: Path) -> list[LabelledQuery]:
    """Read a JSONL queries file.

    Raises:
        SkillError: a line is not JSON or lacks a string ``query`` or ``skill`` (line named).
    """
    out: list[LabelledQuery] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SkillError(f"line {lineno}: not JSON ({exc})", path=str(path)) from exc
        query, skill = data.get("query"), data.get("skill")
        if not isinstance(query, str) or not isinstance(skill, str):
            raise SkillError(
                f'line {lineno}: needs {{"query": <text>, "skill": <skill id>}}', path=str(path)
            )
        also = data.get("also", [])
        if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
            raise SkillError(f'line {lineno}: "also" must be a list of skill ids', path=str(path))
        out.append(LabelledQuery(query, skill, tuple(also)))
    return out


def evaluate(selector: SkillSelector, queries: Sequence[LabelledQuery]) -> EvalResult:
    """Run every query through ``selector.select`` and score the ranking against its label."""
    hits1 = hits5 = 0
    reciprocal = 0.0
    for item in queries:
        ranked = [m.skill.id for m in selector.select(item.query, k=MRR_DEPTH)]
        accepted = {item.skill, *item.also}
        rank = next((i for i, doc in enumerate(ranked, 1) if doc in accepted), 0)
        if rank:
            hits1 += rank == 1
            hits5 += rank <= 5
            reciprocal += 1.0 / rank
    n = len(queries)
    if n == 0:
        return EvalResult(0.0, 0.0, 0.0, 0)
    return EvalResult(hits1 / n, hits5 / n, reciprocal / n, n)
