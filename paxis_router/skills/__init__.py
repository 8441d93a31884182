"""Agent Skills: SKILL.md parsing, a BM25 index, and ``SkillLibrary.select`` for the router.

``paxis_router.router`` imports :mod:`paxis_router.skills.model` on every ``import
paxis_router``, so this package ``__init__`` stays light: the numpy-backed names below are
imported on first attribute access.

Example:
    >>> from paxis_router.skills import SkillLibrary
    >>> SkillLibrary.__name__
    'SkillLibrary'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from paxis_router.skills.model import Skill, SkillMatch, SkillSelector

if TYPE_CHECKING:
    from paxis_router.skills.bm25 import SkillIndex
    from paxis_router.skills.bodies import BodyCache
    from paxis_router.skills.cache import load_or_build
    from paxis_router.skills.hints import SkillHints
    from paxis_router.skills.library import SkillLibrary
    from paxis_router.skills.parse import ParsedSkill, parse_skill_dir
    from paxis_router.skills.prompt import arender_instructions, render_instructions
    from paxis_router.skills.rerank import EmbeddingReranker
    from paxis_router.skills.tokenize import Tokenizer

_LAZY = {
    "BodyCache": "paxis_router.skills.bodies",
    "EmbeddingReranker": "paxis_router.skills.rerank",
    "ParsedSkill": "paxis_router.skills.parse",
    "SkillHints": "paxis_router.skills.hints",
    "SkillIndex": "paxis_router.skills.bm25",
    "SkillLibrary": "paxis_router.skills.library",
    "Tokenizer": "paxis_router.skills.tokenize",
    "arender_instructions": "paxis_router.skills.prompt",
    "load_or_build": "paxis_router.skills.cache",
    "parse_skill_dir": "paxis_router.skills.parse",
    "render_instructions": "paxis_router.skills.prompt",
}

__all__ = [
    "BodyCache",
    "EmbeddingReranker",
    "ParsedSkill",
    "Skill",
    "SkillHints",
    "SkillIndex",
    "SkillLibrary",
    "SkillMatch",
    "SkillSelector",
    "Tokenizer",
    "arender_instructions",
    "load_or_build",
    "parse_skill_dir",
    "render_instructions",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
