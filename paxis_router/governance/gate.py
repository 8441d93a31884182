"""The action gate: every outward action needs a written rule that allows it (deny by default).

An :class:`Action` is a tier call, a skill script run or a tool use, with its principal (team or
API-key id), the request's data classification, its destination (``"local"`` or
``"provider:region"``, as on :class:`~paxis_router.workers.base.Tier`) and an estimated cost. The
:class:`Gate` checks it against a :class:`GatePolicy` in this order; the first check that decides
names itself in ``rule_id``:

1. ``air_gapped: true`` — any destination off the premises (not matching ``premises``) is denied
   (rule ``air_gapped``), whatever the rules below say.
2. ``teams`` — when the section exists, the principal must be listed (or ``"*"``); its
   ``providers`` list bounds the external providers it may reach and ``models`` the models (glob
   patterns) it may call (rules ``teams.unknown``, ``teams.<team>.providers``,
   ``teams.<team>.models``).
3. ``skills`` — a ``run_script`` / ``use_tool`` action of a skill needs the skill listed with the
   script or tool in its allow-list (rules ``skills.unlisted``, ``skills.<skill>.scripts`` /
   ``.tools``); a tool the caller registered (no skill) is decided by the rules below.
4. ``budgets`` — the principal's spend so far plus the action's estimated cost must stay within
   its ``limit_usd`` (rule ``budgets.<team>``).
5. ``rules`` — ordered; the first rule whose every given field matches decides. ``effect: deny``
   denies; ``effect: allow`` allows, and its ``pii`` field says what to do when the request carries
   PII: ``pass`` (send as is), ``redact`` (placeholders out, originals restored in the answer) or
   ``block`` (deny). A redaction that fails blocks: fail closed.
6. nothing matched — deny (rule ``default``).

Example:
    >>> policy = GatePolicy.model_validate({
    ...     "version": "2026-11-28",
    ...     "rules": [
    ...         {"id": "local", "effect": "allow", "destinations": ["local"]},
    ...         {"id": "public-out", "effect": "allow", "data_classes": ["public"],
    ...          "destinations": ["openai:*"], "pii": "redact"},
    ...     ],
    ... })
    >>> gate = Gate(policy)
    >>> gate.check(Action(kind="call_tier", target="frontier:gpt-4o", destination="openai:us",
    ...                   data_class="restricted", principal="claims")).effect
    'deny'
    >>> gate.check(Action(kind="call_tier", target="frontier:gpt-4o", destination="openai:us",
    ...                   data_class="public", principal="claims"),
    ...            text="write to bob@example.com").effect
    'redact'
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from paxis_router.errors import ConfigError, RedactionError
from paxis_router.governance.pii import (
    BuiltinPiiDetector,
    PiiDetector,
    Redactor,
    restore_placeholders,
)
from paxis_router.types import Usage

if TYPE_CHECKING:
    from collections.abc import Callable

    from paxis_router.types import ChatRequest
    from paxis_router.workers.base import Tier

logger = logging.getLogger(__name__)

ActionKind = Literal["call_tier", "run_script", "use_tool"]
Effect = Literal["allow", "deny", "redact"]

# Tokens assumed for an answer when the request sets no max_tokens (cost estimate only).
DEFAULT_ESTIMATED_COMPLETION_TOKENS = 512


# --- the policy ---------------------------------------------------------------------------------

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class GateRule(BaseModel):
    """One ordered rule. Every field given must match; an omitted field matches anything.

    Patterns are shell globs (``openai:*``, ``gpt-4o*``); a pattern starting with ``!`` matches
    what the rest does not match (``"!local"`` = anything but local).
    """

    model_config = _FROZEN

    id: str = Field(min_length=1)
    effect: Literal["allow", "deny"]
    kinds: tuple[ActionKind, ...] | None = None
    data_classes: tuple[str, ...] | None = None
    destinations: tuple[str, ...] | None = None
    principals: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    skills: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None  # the tier, script or tool acted on (globs)
    pii: Literal["pass", "redact", "block"] = "pass"
    restore: bool = True
    reason: str = ""


class TeamGrant(BaseModel):
    """What one team (principal) may reach: external providers and model patterns."""

    model_config = _FROZEN

    providers: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None


class SkillGrant(BaseModel):
    """The scripts and tools one skill may run (glob patterns)."""

    model_config = _FROZEN

    scripts: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


class Budget(BaseModel):
    """A principal's spending limit in USD for the gate's accounting window."""

    model_config = _FROZEN

    limit_usd: Decimal = Field(ge=0)

    @field_validator("limit_usd", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            return str(value)
        return value


class GatePolicy(BaseModel):
    """A gate policy: the ``gate:`` section of a policy YAML (see the module docstring)."""

    model_config = _FROZEN

    version: str = Field(min_length=1)
    air_gapped: bool = False
    premises: tuple[str, ...] = ("local",)
    teams: dict[str, TeamGrant] | None = None
    skills: dict[str, SkillGrant] | None = None
    budgets: dict[str, Budget] = Field(default_factory=dict)
    rules: tuple[GateRule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[GateRule, ...]) -> tuple[GateRule, ...]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return rules

    def on_premises(self, destination: str) -> bool:
        """True when ``destination`` matches one of the ``premises`` patterns."""
        return _matches_any(destination, self.premises)


def load_gate_policy(path: str | Path) -> GatePolicy:
    """Load a gate policy from a YAML file: its ``gate:`` section, or the whole file when it has
    none. Every problem is a ConfigError naming the file and the dotted field.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "gate.yaml"
        >>> _ = path.write_text("gate: {version: v1, air_gapped: true}")
        >>> load_gate_policy(path).air_gapped
        True
    """
    import yaml  # here, not at module level: keeps `import paxis_router` light

    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read gate policy: {exc}", source=source) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from exc
    prefix = ""
    if isinstance(raw, dict) and "gate" in raw:
        raw, prefix = raw["gate"], "gate."
    return parse_gate_policy(raw, source=source, prefix=prefix)


def parse_gate_policy(raw: object, *, source: str = "<dict>", prefix: str = "") -> GatePolicy:
    """Validate a mapping as a GatePolicy; failures are ConfigError naming ``source`` and field."""
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or None
        raise ConfigError("a gate policy must be a mapping", source=source, field=where)
    try:
        return GatePolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = prefix + ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"{first['msg']} ({len(exc.errors())} error(s) in the gate policy)",
            source=source,
            field=where or None,
        ) from exc


# --- actions and decisions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """An outward action the gate must allow.

    ``target`` names what is acted on: the tier name for ``call_tier``, the script path for
    ``run_script``, the tool name for ``use_tool``. ``estimated_cost_usd`` is None when unknown.
    """

    kind: ActionKind
    target: str
    destination: str = "local"
    principal: str | None = None
    data_class: str = "internal"
    model: str | None = None
    skill: str | None = None
    estimated_cost_usd: Decimal | None = None

    @property
    def provider(self) -> str:
        """The provider part of the destination (``"openai"`` for ``"openai:us"``)."""
        return self.destination.split(":", 1)[0]

    @classmethod
    def for_tier(cls, tier: Tier, request: ChatRequest, skill: str | None = None) -> Action:
        """The action of sending ``request`` to ``tier``, with a cost estimate from its price."""
        model = str(getattr(tier.worker, "model", tier.name))
        return cls(
            kind="call_tier",
            target=tier.name,
            destination=tier.destination,
            principal=request.team,
            data_class=request.data_class,
            model=model,
            skill=skill,
            estimated_cost_usd=_estimate_cost(tier, request),
        )


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer for one action: ``allow``, ``deny`` or ``redact``, and why."""

    effect: Effect
    rule_id: str
    policy_version: str
    reason: str
    restore: bool = True
    pii_kinds: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """True unless the action was denied (a redacted action goes out, redacted)."""
        return self.effect != "deny"


@dataclass(frozen=True)
class Screened:
    """A request after the gate: the decision, the request to send (None when denied), and the
    placeholders that :meth:`restore` puts back into the answer."""

    decision: GateDecision
    request: ChatRequest | None
    placeholders: dict[str, str] = field(default_factory=dict)

    def restore(self, text: str) -> str:
        """The answer with this request's placeholders replaced by the originals, where safe: only
        placeholders the gate issued, JSON-escaped when the request asked for a JSON answer, and
        not at all when the deciding rule says ``restore: false``."""
        if not self.placeholders or not self.decision.restore or self.request is None:
            return text
        as_json = self.request.response_format is not None
        return restore_placeholders(text, self.placeholders, json_strings=as_json)


# --- the gate -----------------------------------------------------------------------------------


class Gate:
    """Checks actions against a GatePolicy. Deny by default.

    Args:
        policy: a GatePolicy, or the path of a YAML file holding one (see ``load_gate_policy``).
        detector: finds PII for ``pii: redact|block`` rules (default: the built-in detector);
            any object with ``name`` and ``detect(text)`` works, e.g. a Presidio adapter.
        spent_usd: the principal's spend so far in the budget window (e.g. a ledger query). When
            omitted, the gate sums the costs reported to :meth:`charge` (the Router reports each
            attempt's cost), which counts this process only.

    Example:
        >>> gate = Gate(GatePolicy(version="v1", rules=(
        ...     GateRule(id="local", effect="allow", destinations=("local",)),)))
        >>> gate.check(Action(kind="call_tier", target="local:qwen")).rule_id
        'local'
        >>> out = Action(kind="call_tier", target="frontier:x", destination="openai:us")
        >>> gate.check(out).rule_id
        'default'
    """

    def __init__(
        self,
        policy: GatePolicy | str | Path,
        *,
        detector: PiiDetector | None = None,
        spent_usd: Callable[[str], Decimal] | None = None,
    ):
        self.policy = policy if isinstance(policy, GatePolicy) else load_gate_policy(policy)
        self.detector: PiiDetector = detector or BuiltinPiiDetector()
        self._spent_usd = spent_usd
        self._tally: defaultdict[str, Decimal] = defaultdict(Decimal)
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.policy.version

    def charge(self, principal: str | None, cost_usd: Decimal | None) -> None:
        """Count ``cost_usd`` against ``principal``'s budget (used when no spent_usd is given)."""
        if principal is None or cost_usd is None:
            return
        with self._lock:
            self._tally[principal] += cost_usd

    def spent(self, principal: str) -> Decimal:
        """What ``principal`` has spent so far, as the gate counts it."""
        if self._spent_usd is not None:
            return self._spent_usd(principal)
        with self._lock:
            return self._tally[principal]

    def check(self, action: Action, text: str | None = None) -> GateDecision:
        """Decide one action. ``text`` is the payload that would leave (for PII rules)."""
        matched = self._match(action)
        if isinstance(matched, GateDecision):
            return matched
        return self._apply_pii(matched, text)

    def screen(self, action: Action, request: ChatRequest) -> Screened:
        """Decide ``action`` for ``request`` and prepare what may be sent.

        Allowed: the request as is. Redacted: a copy whose every message has PII replaced by
        placeholders. Denied (including a redaction that failed): ``request`` is None.
        """
        matched = self._match(action)
        if isinstance(matched, GateDecision):
            return Screened(matched, None)
        if matched.pii != "redact":
            decision = self._apply_pii(matched, "\n".join(request.texts()))
            return Screened(decision, request if decision.allowed else None)
        # Redact straight away: the redactor's own detection decides, and its re-scan of the
        # redacted text is the fail-closed check.
        redactor = Redactor(detector=self.detector)
        try:
            redacted = request.map_texts(redactor.redact)
        except RedactionError as exc:
            logger.warning("redaction failed for %s: %s", action.target, exc)
            failed = self._decide("deny", matched.id, f"redaction failed, blocked: {exc}")
            return Screened(failed, None)
        if not redactor.findings:
            return Screened(self._allowed(matched), request)
        decision = self._redacted(matched, {f.kind for f in redactor.findings})
        return Screened(decision, redacted, dict(redactor.placeholders))

    # --- internals ---

    def _decide(
        self,
        effect: Effect,
        rule_id: str,
        reason: str,
        *,
        restore: bool = True,
        pii_kinds: tuple[str, ...] = (),
    ) -> GateDecision:
        return GateDecision(effect, rule_id, self.policy.version, reason, restore, pii_kinds)

    def _check_fixed(self, action: Action) -> GateDecision | None:
        policy = self.policy
        if policy.air_gapped and not policy.on_premises(action.destination):
            return self._decide(
                "deny",
                "air_gapped",
                f"air-gapped policy: destination {action.destination!r} is off the premises",
            )
        if policy.teams is not None:
            denied = self._check_team(action, policy.teams)
            if denied is not None:
                return denied
        if action.kind == "run_script" or (action.kind == "use_tool" and action.skill is not None):
            denied = self._check_skill(action)
            if denied is not None:
                return denied
        return self._check_budget(action)

    def _check_team(self, action: Action, teams: dict[str, TeamGrant]) -> GateDecision | None:
        principal = action.principal
        key = principal if principal in teams else ("*" if "*" in teams else None)
        if key is None:
            return self._decide(
                "deny", "teams.unknown", f"principal {principal!r} is not listed under teams"
            )
        grant = teams[key]
        external = not self.policy.on_premises(action.destination)
        if external and grant.providers is not None and action.provider not in grant.providers:
            return self._decide(
                "deny",
                f"teams.{key}.providers",
                f"team {principal!r} may not use provider {action.provider!r}",
            )
        if grant.models is not None and action.kind == "call_tier":
            model = action.model or action.target
            if not _matches_any(model, grant.models):
                return self._decide(
                    "deny", f"teams.{key}.models", f"team {principal!r} may not use model {model!r}"
                )
        return None

    def _check_skill(self, action: Action) -> GateDecision | None:
        skills = self.policy.skills or {}
        grant = skills.get(action.skill or "")
        if grant is None:
            return self._decide(
                "deny",
                "skills.unlisted",
                f"skill {action.skill!r} has no allow-list for {action.kind}",
            )
        field_name = "scripts" if action.kind == "run_script" else "tools"
        allowed = grant.scripts if action.kind == "run_script" else grant.tools
        if not _matches_any(action.target, allowed):
            return self._decide(
                "deny",
                f"skills.{action.skill}.{field_name}",
                f"{action.target!r} is not in skill {action.skill!r}'s {field_name} allow-list",
            )
        return None

    def _check_budget(self, action: Action) -> GateDecision | None:
        principal = action.principal
        if principal is None or principal not in self.policy.budgets:
            return None
        limit = self.policy.budgets[principal].limit_usd
        projected = self.spent(principal) + (action.estimated_cost_usd or Decimal(0))
        if projected > limit:
            return self._decide(
                "deny",
                f"budgets.{principal}",
                f"team {principal!r} would spend ${projected} of its ${limit} budget",
            )
        return None

    def _match(self, action: Action) -> GateDecision | GateRule:
        """A deny decision, or the allow rule that matched (its PII handling still to apply)."""
        decided = self._check_fixed(action)
        if decided is not None:
            return decided
        for rule in self.policy.rules:
            if not _rule_matches(rule, action):
                continue
            if rule.effect == "deny":
                return self._decide("deny", rule.id, rule.reason or "denied by rule")
            return rule
        return self._decide(
            "deny",
            "default",
            f"no rule allows {action.kind} {action.target!r} to {action.destination!r} "
            f"for data class {action.data_class!r}: deny by default",
        )

    def _apply_pii(self, rule: GateRule, text: str | None) -> GateDecision:
        if rule.pii == "pass" or not text:
            return self._allowed(rule)
        try:
            found = self.detector.detect(text)
        except Exception as exc:  # any third-party detector: a crash must block, not leak
            return self._decide(
                "deny", rule.id, f"PII detector failed ({type(exc).__name__}: {exc}), blocked"
            )
        if not found:
            return self._allowed(rule)
        kinds = {f.kind for f in found}
        if rule.pii == "block":
            return self._decide(
                "deny",
                rule.id,
                f"PII found ({', '.join(sorted(kinds))}): rule blocks",
                pii_kinds=tuple(sorted(kinds)),
            )
        return self._redacted(rule, kinds)

    def _allowed(self, rule: GateRule) -> GateDecision:
        default = "allowed by rule" if rule.pii == "pass" else "allowed by rule; no PII found"
        return self._decide("allow", rule.id, rule.reason or default)

    def _redacted(self, rule: GateRule, kinds: set[str]) -> GateDecision:
        ordered = tuple(sorted(kinds))
        return self._decide(
            "redact",
            rule.id,
            f"PII found ({', '.join(ordered)}): redacted",
            restore=rule.restore,
            pii_kinds=ordered,
        )


def _matches_any(value: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern.startswith("!"):
            if not fnmatch.fnmatchcase(value, pattern[1:]):
                return True
        elif fnmatch.fnmatchcase(value, pattern):
            return True
    return False


def _rule_matches(rule: GateRule, action: Action) -> bool:
    checks: tuple[tuple[tuple[str, ...] | None, str | None], ...] = (
        (rule.kinds, action.kind),
        (rule.data_classes, action.data_class),
        (rule.destinations, action.destination),
        (rule.principals, action.principal),
        (rule.models, action.model or action.target),
        (rule.skills, action.skill),
        (rule.targets, action.target),
    )
    for patterns, value in checks:
        if patterns is None:
            continue
        if value is None or not _matches_any(value, patterns):
            return False
    return True


def _estimate_cost(tier: Tier, request: ChatRequest) -> Decimal | None:
    if tier.price is None:
        return None
    chars = sum(len(text) for text in request.texts())
    usage = Usage(
        prompt_tokens=max(1, chars // 4),  # ~4 characters per token: an estimate, not a bill
        completion_tokens=request.max_tokens or DEFAULT_ESTIMATED_COMPLETION_TOKENS,
    )
    return tier.price.cost(usage, 0.0)
