"""A skill (an Agent Skills folder with a SKILL.md) and a ranked match of one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path


@dataclass(frozen=True)
class Skill:
    """One skill. The body is read on demand (progressive disclosure) through ``load_body``.

    ``id`` is the skill folder's path relative to the library root (``owner__repo/skill-name``);
    ``name`` and ``description`` come from the SKILL.md frontmatter; ``metadata`` is its string map,
    where routing hints live (see the skills README for the keys).
    """

    id: str
    name: str
    description: str
    path: Path | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    license: str | None = None
    compatibility: str | None = None
    allowed_tools: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    load_body: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    def body(self) -> str:
        """The Markdown body of SKILL.md (read now, not at index time)."""
        return self.load_body() if self.load_body is not None else ""


@dataclass(frozen=True, slots=True)
class SkillMatch:
    """A skill chosen for a query, with its score and the query terms that matched it."""

    skill: Skill
    score: float
    matched_terms: tuple[str, ...] = ()


@runtime_checkable
class SkillSelector(Protocol):
    """What the router needs from a skill library: rank skills for a query.

    A library may also offer ``get(skill_id) -> Skill`` (``SkillLibrary`` does); the router then
    honours a request's ``metadata["skill"]`` instead of selecting.
    """

    def select(
        self, query: str, k: int = 3, min_score: float | None = None
    ) -> Sequence[SkillMatch]: ...
