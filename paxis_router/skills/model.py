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
    where routing hints live; the hints are also parsed into typed fields
    (:mod:`paxis_router.skills.hints`):

    - ``pin_tier``: the tier to start the ladder at (``paxis-tier``), or None;
    - ``verifiers``: verifier specs (``{"kind": ..., ...}``, paths made absolute) to run on
      answers for this skill (``paxis-verifier``);
    - ``policy``: policy overrides (the ``policy:`` keys of a policy file) (``paxis-policy``);
    - ``data_class``: the data class of the skill's inputs (``paxis-data-class``), or None.

    Example:
        >>> Skill(id="csv", name="csv", description="Merge CSV files", pin_tier="local:qwen")
        Skill(id='csv', name='csv', description='Merge CSV files', path=None, metadata={}, \
license=None, compatibility=None, allowed_tools=(), scripts=(), references=(), assets=(), \
pin_tier='local:qwen', verifiers=(), policy=None, data_class=None)
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
    pin_tier: str | None = None
    verifiers: tuple[Mapping[str, object], ...] = ()
    policy: Mapping[str, object] | None = None
    data_class: str | None = None

    def body(self) -> str:
        """The Markdown body of SKILL.md: from the library's body cache when the skill came
        from a folder (read once, re-read when the file changes), else from ``load_body``."""
        return self.load_body() if self.load_body is not None else ""

    async def abody(self) -> str:
        """:meth:`body` without blocking the event loop: a cached body at once, else the read
        runs in a worker thread (``asyncio.to_thread``)."""
        loader = self.load_body
        if loader is None:
            return ""
        cached = getattr(loader, "cached", None)
        if cached is not None:
            text = cached()
            if isinstance(text, str):
                return text
        import asyncio

        return await asyncio.to_thread(loader)


class SkillMatch:
    """A skill chosen for a query, with its score and the query terms that matched it.

    Read-only. ``matched_terms`` may be given, or computed on first read by ``lazy_terms``
    (a library's ``select`` does that: the router never reads them, so it never pays for them).

    Example:
        >>> csv = Skill(id="csv", name="csv", description="Merge CSV files")
        >>> m = SkillMatch(csv, 2.5, ("csv",))
        >>> m.skill.id, m.score, m.matched_terms
        ('csv', 2.5, ('csv',))
        >>> SkillMatch(m.skill, 1.0, lazy_terms=lambda: ("merg",)).matched_terms
        ('merg',)
    """

    __slots__ = ("_lazy", "_terms", "score", "skill")

    skill: Skill
    score: float
    _terms: tuple[str, ...] | None
    _lazy: Callable[[], tuple[str, ...]] | None

    def __init__(
        self,
        skill: Skill,
        score: float,
        matched_terms: tuple[str, ...] = (),
        *,
        lazy_terms: Callable[[], tuple[str, ...]] | None = None,
    ):
        setattr_ = object.__setattr__
        setattr_(self, "skill", skill)
        setattr_(self, "score", score)
        setattr_(self, "_terms", None if lazy_terms is not None else tuple(matched_terms))
        setattr_(self, "_lazy", lazy_terms)

    @property
    def matched_terms(self) -> tuple[str, ...]:
        """The query terms (as indexed: lowercased, stemmed) found in the skill."""
        terms: tuple[str, ...] | None = self._terms
        if terms is None:
            assert self._lazy is not None
            terms = self._lazy()
            object.__setattr__(self, "_terms", terms)
            object.__setattr__(self, "_lazy", None)
        return terms

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SkillMatch is read-only (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SkillMatch is read-only (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SkillMatch):
            return NotImplemented
        return (self.skill, self.score, self.matched_terms) == (
            other.skill,
            other.score,
            other.matched_terms,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, like the dataclass it was

    def __repr__(self) -> str:
        return (
            f"SkillMatch(skill={self.skill!r}, score={self.score!r}, "
            f"matched_terms={self.matched_terms!r})"
        )


@runtime_checkable
class SkillSelector(Protocol):
    """What the router needs from a skill library: rank skills for a query.

    A library may also offer ``get(skill_id) -> Skill`` (``SkillLibrary`` does); the router then
    honours a request's ``metadata["skill"]`` instead of selecting.
    """

    def select(
        self, query: str, k: int = 3, min_score: float | None = None
    ) -> Sequence[SkillMatch]: ...
