"""A skill's SKILL.md hints built into live objects: its verifiers (``paxis-verifier``) and its
escalation policy (``paxis-policy``), with the policy file's gate and audit log.

Built once per skill and kept; :func:`check_library` builds every hinted skill's at load time, so
a wrong hint is a ConfigError naming the SKILL.md and field then, never in the middle of a route.

Example:
    >>> from paxis_router.config.schema import PolicySpec
    >>> from paxis_router.skills.model import Skill
    >>> hints = PolicySkillHints(lambda section: PolicySpec.model_validate(section).build())
    >>> skill = Skill("s", "s", "d", verifiers=({"kind": "non_empty"},),
    ...               policy={"escalate_when": "verdict_failed"})
    >>> [v.name for v in hints.verifiers(skill)], hints.policy(skill) is not None
    (['non_empty'], True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from paxis_router.config.verifiers import VerifierSpec, build_verifier
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.sandbox import ScriptGate
    from paxis_router.policy.predicates import EscalationPolicy
    from paxis_router.skills.model import Skill
    from paxis_router.verifiers.base import Verifier

_SPEC: TypeAdapter[VerifierSpec] = TypeAdapter(VerifierSpec)


class PolicySkillHints:
    """The router's :class:`~paxis_router.router.SkillHints` for a policy file.

    Args:
        build_policy: a ``policy:`` section (a mapping) -> its EscalationPolicy; raises
            pydantic's ValidationError or ConfigError for a bad one.
        gate, audit: the policy's, for ``script`` verifiers (their sandbox asks and records).
    """

    def __init__(
        self,
        build_policy: Callable[[Mapping[str, object]], EscalationPolicy],
        *,
        gate: ScriptGate | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.build_policy = build_policy
        self.gate = gate
        self.audit = audit
        self._verifiers: dict[str, tuple[Verifier, ...]] = {}
        self._policies: dict[str, EscalationPolicy | None] = {}

    def verifiers(self, skill: Skill) -> tuple[Verifier, ...]:
        """The verifiers ``paxis-verifier`` names (built once, then kept)."""
        built = self._verifiers.get(skill.id)
        if built is None:
            built = tuple(self._verifier(skill, i, spec) for i, spec in enumerate(skill.verifiers))
            self._verifiers[skill.id] = built
        return built

    def policy(self, skill: Skill) -> EscalationPolicy | None:
        """The escalation policy ``paxis-policy`` gives (None: the router's own)."""
        if skill.id not in self._policies:
            self._policies[skill.id] = self._policy(skill)
        return self._policies[skill.id]

    def _verifier(self, skill: Skill, index: int, raw: object) -> Verifier:
        try:
            spec = _SPEC.validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(
                f"{first['msg']}", source=_source(skill), field=f"metadata.paxis-verifier[{index}]"
            ) from exc
        return build_verifier(spec, _folder(skill), gate=self.gate, audit=self.audit)

    def _policy(self, skill: Skill) -> EscalationPolicy | None:
        if skill.policy is None:
            return None
        try:
            return self.build_policy(skill.policy)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                first["msg"], source=_source(skill), field=f"metadata.paxis-policy.{where}"
            ) from exc
        except ConfigError as exc:
            raise ConfigError(
                str(exc), source=_source(skill), field="metadata.paxis-policy"
            ) from exc


def check_library(skills: Iterable[Skill], hints: PolicySkillHints) -> int:
    """Build every hinted skill's verifiers and policy now; how many skills had hints."""
    hinted = 0
    for skill in skills:
        if skill.verifiers or skill.policy is not None:
            hints.verifiers(skill)
            hints.policy(skill)
            hinted += 1
    return hinted


def _folder(skill: Skill) -> Path:
    if skill.path is None:
        return Path.cwd()
    return skill.path.parent if skill.path.name == "SKILL.md" else skill.path


def _source(skill: Skill) -> str:
    return str(skill.path) if skill.path is not None else skill.id
