"""The instructions of chosen skills, as the system prompt a model reads (progressive disclosure:
only the chosen skills' bodies are read and sent).

Example:
    >>> from paxis_router.skills.model import Skill
    >>> print(render_instructions([Skill("csv", "csv", "Merge CSV files")]))
    Use these skills where they apply.
    <BLANKLINE>
    ## Skill: csv
    Merge CSV files
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from paxis_router.skills.model import Skill


def render_instructions(skills: Iterable[Skill]) -> str:
    """One system-prompt section per skill (name, description, body); "" for no skills."""
    parts = [f"## Skill: {s.name}\n{s.description}\n\n{s.body()}".rstrip() for s in skills]
    if not parts:
        return ""
    return "\n\n".join(["Use these skills where they apply.", *parts])
