"""Routing hints a SKILL.md carries under ``metadata``, parsed into typed, validated values.

::

    ---
    name: invoice-extraction
    description: Extract invoice totals from emails as JSON.
    metadata:
      paxis-adapter: invoice-lora          # LoRA adapter the local worker loads
      paxis-tier: local:qwen-ft-v3         # start the ladder at this tier
      paxis-verifier: non_empty, arithmetic
      paxis-policy: policy.yaml            # overrides of the policy (a file in the skill folder)
      paxis-data-class: restricted         # what the skill's inputs are
    ---

``paxis-verifier`` is a comma-separated list of verifier kinds, or a YAML list of kinds and
``{kind: ..., ...}`` specs (written as YAML under ``metadata``, or as a flow string such as
``'[{kind: json_schema, schema_file: schemas/invoice.json}]'`` for spec-strict metadata).
Relative ``schema_file`` and ``script`` paths are resolved inside the skill folder, and a
``script`` verifier's ``skill`` defaults to the folder. ``paxis-policy`` is a YAML file in the
skill folder (a whole policy file, whose ``policy:`` section is taken, or that section alone)
or an inline mapping (YAML, or a flow string starting with ``{``). Kinds and policy keys are
checked for form here; the config layer checks them against what it can build, when the router
builds them.

Example:
    >>> from pathlib import Path
    >>> hints = parse_hints(
    ...     {"paxis-tier": "local:qwen", "paxis-verifier": "non_empty, arithmetic"},
    ...     folder=Path("/skills/invoice"), where="/skills/invoice/SKILL.md")
    >>> hints.pin_tier, [v["kind"] for v in hints.verifiers], hints.data_class
    ('local:qwen', ['non_empty', 'arithmetic'], None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from paxis_router.errors import SkillError

if TYPE_CHECKING:
    from collections.abc import Mapping

#: ``metadata`` keys paxis_router reads as routing hints (all optional).
ROUTING_HINT_KEYS: dict[str, str] = {
    "paxis-adapter": "LoRA adapter the local worker should load for this skill",
    "paxis-tier": "name of the tier to start the ladder at (Skill.pin_tier)",
    "paxis-verifier": "verifier kinds or specs to run on answers (Skill.verifiers)",
    "paxis-policy": "policy overrides: a YAML file in the skill folder or a mapping (Skill.policy)",
    "paxis-data-class": "data classification of the skill's inputs, e.g. public, internal, "
    "restricted (Skill.data_class)",
}
#: Data classes the bundled gate policies name (others are allowed: the gate decides).
COMMON_DATA_CLASSES = ("public", "internal", "confidential", "restricted")

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_CLASS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TIER_RE = re.compile(r"^\S{1,200}$")
_PATH_KEYS = ("schema_file", "script")
_MAX_POLICY_BYTES = 256 * 1024


def _load_yaml(text: str) -> object:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # a safe loader (C or Python)


@dataclass(frozen=True, slots=True)
class SkillHints:
    """The parsed routing hints of one skill (all optional)."""

    pin_tier: str | None = None
    verifiers: tuple[Mapping[str, object], ...] = ()
    policy: Mapping[str, object] | None = None
    data_class: str | None = None


def parse_hints(meta: Mapping[str, object], *, folder: Path, where: str) -> SkillHints:
    """The hints in a SKILL.md ``metadata`` mapping (other keys are ignored).

    Raises:
        SkillError: a hint of the wrong form, naming the file (``where``) and the field.
    """
    return SkillHints(
        pin_tier=_tier(meta.get("paxis-tier"), where),
        verifiers=_verifiers(meta.get("paxis-verifier"), folder, where),
        policy=_policy(meta.get("paxis-policy"), folder, where),
        data_class=_data_class(meta.get("paxis-data-class"), where),
    )


def _error(field: str, message: str, where: str) -> SkillError:
    return SkillError(f"metadata.{field}: {message}", path=where)


def _tier(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TIER_RE.match(value.strip()):
        raise _error(
            "paxis-tier",
            f"{value!r} is not a tier name (one word of 1-200 characters, as in the policy's "
            "tiers, e.g. local:qwen-ft-v3)",
            where,
        )
    return value.strip()


def _data_class(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CLASS_RE.match(value.strip()):
        raise _error(
            "paxis-data-class",
            f"{value!r} is not a data class (lowercase letters, digits, '-' and '_'; usually "
            f"one of {', '.join(COMMON_DATA_CLASSES)})",
            where,
        )
    return value.strip()


def _verifiers(value: object, folder: Path, where: str) -> tuple[Mapping[str, object], ...]:
    field = "paxis-verifier"
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            try:
                value = _load_yaml(text)
            except yaml.YAMLError as exc:
                raise _error(field, f"not valid YAML ({exc})", where) from exc
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _error(field, "lists no verifier; remove the key or name a kind", where)
    return tuple(_verifier(item, f"{field}[{i}]", folder, where) for i, item in enumerate(items))


def _verifier(item: object, field: str, folder: Path, where: str) -> Mapping[str, object]:
    spec = {"kind": item} if isinstance(item, str) else item
    if not isinstance(spec, dict) or not all(isinstance(k, str) for k in spec):
        raise _error(field, f"{item!r} is neither a verifier kind nor a {{kind: ...}} spec", where)
    kind = spec.get("kind")
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise _error(
            field,
            f"kind {kind!r} is not a verifier kind (lowercase letters, digits and '_', e.g. "
            "non_empty, json_schema, arithmetic, regex, script)",
            where,
        )
    out: dict[str, object] = dict(spec)
    for key in _PATH_KEYS:
        if key in out:
            out[key] = _inside(out[key], folder, f"{field}.{key}", where)
    if kind == "script":
        out.setdefault("skill", str(folder.resolve()))
    for key in ("verifiers",):  # all_of / any_of nest specs
        nested = out.get(key)
        if isinstance(nested, list):
            out[key] = [
                _verifier(inner, f"{field}.{key}[{i}]", folder, where)
                for i, inner in enumerate(nested)
            ]
    return out


def _inside(value: object, folder: Path, field: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(field, f"{value!r} is not a path", where)
    root = folder.resolve()
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        raise _error(field, f"{value!r} is outside the skill folder; keep it inside", where)
    return str(path)


def _policy(value: object, folder: Path, where: str) -> Mapping[str, object] | None:
    field = "paxis-policy"
    if value is None:
        return None
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = _load_yaml(value)
        except yaml.YAMLError as exc:
            raise _error(field, f"not valid YAML ({exc})", where) from exc
    if isinstance(value, str):
        path = Path(_inside(value, folder, field, where))
        try:
            size = path.stat().st_size
            if size > _MAX_POLICY_BYTES:
                raise _error(field, f"{value!r} is {size:,} bytes; a policy is a few lines", where)
            value = _load_yaml(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _error(field, f"cannot read {value!r} ({exc.strerror})", where) from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise _error(field, f"{value!r} is not a valid YAML file ({exc})", where) from exc
        if isinstance(value, dict) and isinstance(value.get("policy"), dict):
            value = value["policy"]  # a whole policy file: its policy: section
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _error(
            field,
            "must be a YAML file in the skill folder, or a mapping of policy keys "
            "(escalate_when, stop_when, on_exhausted, ...)",
            where,
        )
    return dict(value)
