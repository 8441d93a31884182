"""The chosen skills' instructions as the worker's system prompt, without blocking the loop.

``render_skills(matches)`` is what the router puts before the request's messages; with a
library loaded from a folder it costs microseconds (bodies come from the library's
:class:`~paxis_router.skills.bodies.BodyCache`). ``await arender_skills(matches)`` is the same
text, reading any body missing from the cache in worker threads, all at once: the form an
async router should call.

Example:
    >>> from paxis_router.skills.model import Skill, SkillMatch
    >>> csv = Skill(id="csv", name="csv", description="Merge CSV files.",
    ...             load_body=lambda: "1. Read both files.")
    >>> print(render_skills([SkillMatch(csv, 2.0)]))
    Use these skills where they apply.
    <BLANKLINE>
    ## Skill: csv
    Merge CSV files.
    <BLANKLINE>
    1. Read both files.
    >>> import asyncio
    >>> asyncio.run(arender_skills([SkillMatch(csv, 2.0)])) == render_skills([SkillMatch(csv, 2.0)])
    True
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.skills.model import Skill, SkillMatch

_HEADER = "Use these skills where they apply."


def _section(skill: Skill, body: str) -> str:
    return f"## Skill: {skill.name}\n{skill.description}\n\n{body}".rstrip()


def render_skills(matches: Sequence[SkillMatch]) -> str:
    """The system-prompt text for ``matches`` ("" for none); reads bodies through each skill's
    ``body()`` (a cache hit for library skills, so no I/O once warm)."""
    if not matches:
        return ""
    return "\n\n".join([_HEADER, *(_section(m.skill, m.skill.body()) for m in matches)])


async def arender_skills(matches: Sequence[SkillMatch]) -> str:
    """:func:`render_skills`, with bodies from ``Skill.abody()``: cached ones at once, missing
    ones read in worker threads concurrently. The event loop never waits on the disk."""
    if not matches:
        return ""
    bodies = await asyncio.gather(*(m.skill.abody() for m in matches))
    sections = (_section(m.skill, body) for m, body in zip(matches, bodies, strict=True))
    return "\n\n".join([_HEADER, *sections])
