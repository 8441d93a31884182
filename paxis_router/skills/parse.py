"""SKILL.md parsing per the Agent Skills specification, lenient where real skills are.

A skill is a folder holding ``SKILL.md``: YAML frontmatter between ``---`` lines, then a Markdown
body. Required: ``name`` (1-64 chars of lowercase letters, digits and single hyphens, equal to the
folder name) and ``description`` (1-1024 chars). Optional: ``license``, ``compatibility``,
``metadata`` (a string map) and ``allowed-tools``. Files under ``scripts/``, ``references/`` and
``assets/`` are listed, never read.

Strict (raise :class:`~paxis_router.errors.SkillError` naming the path): no frontmatter,
unparsable YAML, no ``description``, a file that is not UTF-8, a file over ``max_bytes``.
Lenient (load, with a warning): extra top-level keys, a ``name`` that breaks the charset, is too
long, differs from the folder or is missing (the folder name is used), a description over 1024
chars, non-string ``metadata`` values (stringified).

Routing hints live under ``metadata`` (see :data:`ROUTING_HINT_KEYS`) and are parsed into the
skill's typed fields by :mod:`paxis_router.skills.hints` (a malformed hint is strict). The YAML
is parsed once, here, with libyaml's ``CSafeLoader`` when PyYAML has it; a body read later for the
prompt is found with a regular expression alone (:mod:`paxis_router.skills.bodies`).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "csv-cleanup").mkdir()
    >>> _ = (root / "csv-cleanup" / "SKILL.md").write_text(
    ...     "---\\nname: csv-cleanup\\ndescription: Clean messy CSV files.\\n---\\n# Steps\\n")
    >>> parsed = parse_skill_dir(root / "csv-cleanup", root=root)
    >>> parsed.skill.id, parsed.skill.description, parsed.body, parsed.warnings
    ('csv-cleanup', 'Clean messy CSV files.', '# Steps\\n', ())
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from paxis_router.errors import SkillError
from paxis_router.skills.bodies import (
    MAX_SKILL_BYTES,
    BodyCache,
    read_skill_file,
    split_text,
)
from paxis_router.skills.hints import ROUTING_HINT_KEYS, parse_hints
from paxis_router.skills.model import Skill

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "MAX_SKILL_BYTES",
    "ROUTING_HINT_KEYS",
    "ParsedSkill",
    "find_skill_dirs",
    "parse_skill_dir",
    "read_skill_text",
    "split_frontmatter",
]

logger = logging.getLogger(__name__)

_SPEC_KEYS = frozenset(
    {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
)
_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LISTED_DIRS = ("scripts", "references", "assets")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class ParsedSkill:
    """One parsed SKILL.md: the skill, its body (for indexing) and the warnings it raised."""

    skill: Skill
    body: str
    warnings: tuple[str, ...] = ()


def split_frontmatter(text: str, *, path: str) -> tuple[dict[str, object], str]:
    """Split SKILL.md text into its frontmatter mapping and its Markdown body.

    Raises:
        SkillError: no frontmatter, unparsable YAML, or frontmatter that is not a mapping.
    """
    source, body = split_text(text, path=path)
    try:
        data = yaml.load(source, Loader=_YAML_LOADER)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        raise SkillError(
            f"frontmatter is not valid YAML ({exc}); fix the syntax", path=path
        ) from exc
    if not isinstance(data, dict):
        raise SkillError("frontmatter must be a YAML mapping of keys to values", path=path)
    return {str(k): v for k, v in data.items()}, body


def read_skill_text(path: Path, *, max_bytes: int = MAX_SKILL_BYTES) -> str:
    """Read SKILL.md as UTF-8, refusing files over ``max_bytes`` and invalid encodings."""
    return read_skill_file(path, max_bytes=max_bytes)[0]


def _optional_str(data: dict[str, object], key: str, warnings: list[str]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        warnings.append(f"'{key}' should be a string, got {type(value).__name__}; stringified")
        return str(value)
    return value


def _listed(folder: Path, name: str) -> tuple[str, ...]:
    sub = folder / name
    if not sub.is_dir():
        return ()
    return tuple(sorted(p.relative_to(folder).as_posix() for p in sub.rglob("*") if p.is_file()))


def parse_skill_dir(
    folder: Path,
    *,
    root: Path | None = None,
    max_bytes: int = MAX_SKILL_BYTES,
    bodies: BodyCache | None = None,
) -> ParsedSkill:
    """Parse the skill in ``folder`` (which holds SKILL.md); its id is the path under ``root``.

    ``bodies``: the cache the skill's ``load_body`` reads through; the body just read is put
    in it. Without one, ``body()`` reads the file on every call (no YAML parse).

    Raises:
        SkillError: on the strict failures listed in the module docstring, naming the path.
    """
    path = folder / "SKILL.md"
    where = str(path)
    try:
        text, stamp = read_skill_file(path, max_bytes=max_bytes)
    except OSError as exc:
        raise SkillError(f"cannot read SKILL.md: {exc}", path=where) from exc
    data, body = split_frontmatter(text, path=where)
    warnings: list[str] = []
    skill_id = (
        folder.name if root is None or folder == root else folder.relative_to(root).as_posix()
    )

    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise SkillError(
            "frontmatter has no 'description' (a non-empty string, 1-1024 chars saying what the "
            "skill does and when to use it); add one",
            path=where,
        )
    description = description.strip()
    if len(description) > 1024:
        warnings.append(f"description is {len(description)} chars, over the spec's 1024")

    raw_name = data.get("name")
    if raw_name is None or (isinstance(raw_name, str) and not raw_name.strip()):
        name = folder.name
        warnings.append(f"frontmatter has no 'name'; using the folder name {name!r}")
    else:
        name = str(raw_name).strip()
        if not (1 <= len(name) <= 64) or not _NAME_RE.match(name):
            warnings.append(
                f"name {name!r} breaks the spec (1-64 lowercase letters, digits, single hyphens)"
            )
        if name != folder.name:
            warnings.append(f"name {name!r} differs from the folder name {folder.name!r}")

    extra = sorted(set(data) - _SPEC_KEYS)
    if extra:
        warnings.append(f"non-spec frontmatter keys ignored: {', '.join(extra)}")

    metadata: dict[str, str] = {}
    raw_meta = data.get("metadata")
    if isinstance(raw_meta, dict):
        for key, value in raw_meta.items():
            if isinstance(value, str):
                metadata[str(key)] = value
            elif str(key) in ROUTING_HINT_KEYS:  # a structured hint: kept as JSON text
                metadata[str(key)] = json.dumps(value, default=str)
            else:
                warnings.append(f"metadata.{key} is not a string; stringified")
                metadata[str(key)] = str(value)
    elif raw_meta is not None:
        warnings.append("'metadata' should be a mapping of strings; ignored")
    hints = parse_hints(
        {str(k): v for k, v in raw_meta.items()} if isinstance(raw_meta, dict) else {},
        folder=folder,
        where=where,
    )

    tools_raw = data.get("allowed-tools")
    if isinstance(tools_raw, str):
        allowed_tools = tuple(tools_raw.split())
    elif isinstance(tools_raw, list):
        allowed_tools = tuple(str(t) for t in tools_raw)
    else:
        allowed_tools = ()

    compatibility = _optional_str(data, "compatibility", warnings)
    if compatibility is not None and len(compatibility) > 500:
        warnings.append(f"compatibility is {len(compatibility)} chars, over the spec's 500")

    skill = Skill(
        id=skill_id,
        name=name,
        description=description,
        path=path,
        metadata=metadata,
        license=_optional_str(data, "license", warnings),
        compatibility=compatibility,
        allowed_tools=allowed_tools,
        scripts=_listed(folder, "scripts"),
        references=_listed(folder, "references"),
        assets=_listed(folder, "assets"),
        load_body=(bodies if bodies is not None else BodyCache(max_entries=0)).loader(
            path, max_bytes
        ),
        pin_tier=hints.pin_tier,
        verifiers=hints.verifiers,
        policy=hints.policy,
        data_class=hints.data_class,
    )
    if bodies is not None:
        bodies.put(path, body, stamp)
    for message in warnings:
        logger.info("%s: %s", where, message)
    return ParsedSkill(skill=skill, body=body, warnings=tuple(warnings))


def find_skill_dirs(root: Path) -> Iterator[Path]:
    """Every skill folder (holding SKILL.md) under ``root``, itself included; sorted.

    Hidden folders and SKILL.md files nested inside another skill are skipped.

    Raises:
        SkillError: ``root`` is not a directory.
    """
    if not root.is_dir():
        raise SkillError("not a directory of skills", path=str(root))
    folders = [
        path.parent
        for path in sorted(root.rglob("SKILL.md"))
        if not any(part.startswith(".") for part in path.relative_to(root).parts[:-1])
    ]
    found = set(folders)
    for folder in folders:
        # A SKILL.md inside another skill (a template under assets/, say) is not a skill.
        if not any(parent in found for parent in folder.parents):
            yield folder
