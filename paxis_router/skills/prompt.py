"""The chosen skills' instructions as the worker's system prompt, without blocking the loop.

``render_instructions(skills)`` is what the router (and the agent) put before the request's
messages; with a library loaded from a folder it costs microseconds (bodies come from the
library's :class:`~paxis_router.skills.bodies.BodyCache`). ``await arender_instructions(skills)``
is the same text, reading any body missing from the cache in worker threads, all at once: the
form an async router calls. Progressive disclosure: only the chosen skills' bodies are read.

Example:
    >>> from paxis_router.skills.model import Skill
    >>> csv = Skill(id="csv", name="csv", description="Merge CSV files.",
    ...             load_body=lambda: "1. Read both files.")
    >>> print(render_instructions([csv]))
    Use these skills where they apply.
    <BLANKLINE>
    ## Skill: csv
    Merge CSV files.
    <BLANKLINE>
    1. Read both files.
    >>> import asyncio
    >>> asyncio.run(arender_instructions([csv])) == render_instructions([csv])
    True
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from paxis_router._eager import eager_gather

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from paxis_router.skills.model import Skill

_HEADER = "Use these skills where they apply."


def _section(skill: Skill, body: str) -> str:
    return f"## Skill: {skill.name}\n{skill.description}\n\n{body}".rstrip()


def render_instructions(skills: Iterable[Skill]) -> str:
    """The system-prompt text for ``skills`` ("" for none); reads bodies through each skill's
    ``body()`` (a cache hit for library skills, so no I/O once warm)."""
    sections = [_section(skill, skill.body()) for skill in skills]
    return "\n\n".join([_HEADER, *sections]) if sections else ""


async def arender_instructions(skills: Sequence[Skill]) -> str:
    """:func:`render_instructions`, with bodies from ``Skill.abody()``: cached ones at once,
    missing ones read in worker threads concurrently. The event loop never waits on the disk."""
    if not skills:
        return ""
    bodies = await eager_gather([skill.abody() for skill in skills])  # cached: no task
    return _rendered(tuple(skills), tuple(bodies))


_RENDERED_KEPT = 256
# skill ids -> (the skills and bodies it was rendered from, the text): the same skills with the
# same body objects (a warm body cache) give back the same string object, whose hash and JSON
# form later steps (the audit payload, the gate) then find remembered.
_rendered_texts: dict[tuple[str, ...], tuple[tuple[Skill, ...], tuple[str, ...], str]] = {}
_rendered_lock = threading.Lock()


def _rendered(skills: tuple[Skill, ...], bodies: tuple[str, ...]) -> str:
    key = tuple(skill.id for skill in skills)
    entry = _rendered_texts.get(key)
    if (
        entry is not None
        and all(a is b for a, b in zip(entry[0], skills, strict=True))
        and all(a is b for a, b in zip(entry[1], bodies, strict=True))
    ):
        return entry[2]
    sections = (_section(skill, body) for skill, body in zip(skills, bodies, strict=True))
    text = "\n\n".join([_HEADER, *sections])
    with _rendered_lock:
        if len(_rendered_texts) >= _RENDERED_KEPT:
            del _rendered_texts[next(iter(_rendered_texts))]
        _rendered_texts[key] = (skills, bodies, text)
    return text
