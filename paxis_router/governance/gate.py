"""The action gate: every outward action needs a written rule that allows it (deny by default).

An :class:`Action` is a tier call, a skill script run or a tool use, with its principal (team or
API-key id), the request's data classification, its destination (``"local"``,
``"provider:region"`` or ``"remote:<host>"``, as on :class:`~paxis_router.workers.base.Tier`), the
network host it connects to (when known) and an estimated cost.

Where an action goes is decided by its host, not by its label: a host is on the premises when
it is loopback or declared in ``on_premises_hosts`` (names, IP networks in CIDR form, ``.domain``
suffixes; never resolved through DNS, see :mod:`paxis_router.workers.destination`). An action
labelled on-premises whose host is neither is treated as ``remote:<host>``; one labelled
``remote:<host>`` whose host is declared is treated as ``local``.

The :class:`Gate` checks an action against a :class:`GatePolicy` in this order; the first check
that decides names itself in ``rule_id``:

1. ``air_gapped: true`` — any destination off the premises (not matching ``premises``) is denied
   (rule ``air_gapped``), whatever the rules below say. An unknown destination is off them.
2. ``teams`` — when the section exists, the principal must be listed (or ``"*"``); its
   ``providers`` list bounds the external providers it may reach and ``models`` the models (glob
   patterns) it may call (rules ``teams.unknown``, ``teams.<team>.providers``,
   ``teams.<team>.models``).
3. ``skills`` — a ``run_script`` / ``use_tool`` action of a skill needs the skill listed with the
   script or tool in its allow-list (rules ``skills.unlisted``, ``skills.<skill>.scripts`` /
   ``.tools``); a tool the caller registered (no skill) is decided by the rules below.
4. ``rules`` — ordered; the first rule whose every given field matches decides. ``effect: deny``
   denies; ``effect: allow`` allows, and its ``pii`` field says what to do when the request carries
   PII: ``pass`` (send as is), ``redact`` (placeholders out, originals restored in the answer) or
   ``block`` (deny). Every text the request carries is screened (``ChatRequest.texts()``), read
   one by one and together. A redaction that fails blocks: fail closed.
5. nothing matched — deny (rule ``default``).

Spending limits are not the gate's: they are the policy file's top-level ``budgets:`` section
(:class:`~paxis_router.governance.budgets.Budgets`, per day or month, read from the ledger).

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

import dataclasses
import fnmatch
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from paxis_router.errors import ConfigError, RedactionError
from paxis_router.governance.pii import (
    BuiltinPiiDetector,
    PiiDetector,
    Redactor,
    StreamRestorer,
    detect_texts,
    restore_placeholders,
)
from paxis_router.types import Completion, Usage
from paxis_router.workers.destination import LOCAL, REMOTE_PREFIX, OnPremises, host_on_premises

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from decimal import Decimal

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


BUDGETS_MOVED = (
    "the gate no longer keeps budgets: spending limits are the policy file's top-level "
    "`budgets:` section, per team per day or month, counted from the ledger (see "
    'paxis_router.governance.budgets). Replace `gate: {budgets: {claims: {limit_usd: "500"}}}` '
    'with `budgets: {teams: {claims: {month: "500"}}}`'
)


class GatePolicy(BaseModel):
    """A gate policy: the ``gate:`` section of a policy YAML (see the module docstring).

    ``premises`` are destination patterns that count as on the premises (``"local"``, or
    ``"onprem:*"`` for named data centres); ``on_premises_hosts`` are the hosts, IP networks
    (CIDR) and ``.domain`` suffixes a tier may connect to and still be on them (loopback always
    is). A ``budgets`` key is refused with a hint: budgets moved to the top-level section.
    """

    model_config = _FROZEN

    version: str = Field(min_length=1)
    air_gapped: bool = False
    premises: tuple[str, ...] = ("local",)
    on_premises_hosts: tuple[str, ...] = ()
    teams: dict[str, TeamGrant] | None = None
    skills: dict[str, SkillGrant] | None = None
    budgets: None = None
    rules: tuple[GateRule, ...] = ()

    _hosts: OnPremises = PrivateAttr(default_factory=OnPremises)

    @field_validator("budgets", mode="before")
    @classmethod
    def _budgets_moved(cls, value: object) -> None:
        if value is not None:
            raise ValueError(BUDGETS_MOVED)

    @field_validator("on_premises_hosts")
    @classmethod
    def _valid_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        OnPremises.parse(hosts)  # raises ValueError naming a bad entry
        return hosts

    def model_post_init(self, context: object, /) -> None:
        self._hosts = OnPremises.parse(self.on_premises_hosts)

    @property
    def hosts(self) -> OnPremises:
        """``on_premises_hosts``, parsed."""
        return self._hosts

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

    def host_on_premises(self, host: str) -> bool:
        """True when calls to ``host`` stay on the premises: loopback, or declared in
        ``on_premises_hosts`` (by name, network or suffix; names are not resolved)."""
        return host_on_premises(host, self._hosts)


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
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"{message} ({len(exc.errors())} error(s) in the gate policy)",
            source=source,
            field=where or None,
        ) from exc


# --- actions and decisions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """An outward action the gate must allow.

    ``target`` names what is acted on: the tier name for ``call_tier``, the script path for
    ``run_script``, the tool name for ``use_tool``. ``host`` is the network host the action
    connects to (None: in-process, or a provider SDK whose host the label names).
    ``estimated_cost_usd`` is None when unknown.
    """

    kind: ActionKind
    target: str
    destination: str = "local"
    principal: str | None = None
    data_class: str = "internal"
    model: str | None = None
    skill: str | None = None
    estimated_cost_usd: Decimal | None = None
    host: str | None = None

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
            host=tier.host,
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

    @overload
    def restore(self, answer: str) -> str: ...

    @overload
    def restore(self, answer: Completion) -> Completion: ...

    def restore(self, answer: str | Completion) -> str | Completion:
        """The answer with this request's placeholders replaced by the originals, where safe: only
        placeholders the gate issued, JSON-escaped when the request asked for a JSON answer, and
        not at all when the deciding rule says ``restore: false``.

        A Completion comes back with its content and every tool call's arguments restored (the
        arguments as JSON: values restored inside its strings, so a quote cannot break it).
        """
        if not self._restoring:
            return answer
        if isinstance(answer, str):
            return self._restore_text(answer)
        calls = tuple(
            call.model_copy(
                update={
                    "function": call.function.model_copy(
                        update={"arguments": self._restore_arguments(call.function.arguments)}
                    )
                }
            )
            for call in answer.tool_calls
        )
        return dataclasses.replace(
            answer, content=self._restore_text(answer.content), tool_calls=calls
        )

    def stream_restorer(self) -> StreamRestorer:
        """A restorer for this answer streamed in pieces (``feed`` each text delta, ``flush``
        at the end); it passes text through unchanged when there is nothing to restore."""
        if not self._restoring or self.request is None:
            return StreamRestorer({})
        as_json = self.request.response_format is not None
        return StreamRestorer(self.placeholders, json_strings=as_json)

    @property
    def _restoring(self) -> bool:
        return bool(self.placeholders) and self.decision.restore and self.request is not None

    def _restore_text(self, text: str) -> str:
        as_json = self.request is not None and self.request.response_format is not None
        return restore_placeholders(text, self.placeholders, json_strings=as_json)

    def _restore_arguments(self, arguments: str) -> str:
        if "<" not in arguments:
            return arguments
        try:
            value = json.loads(arguments)
        except ValueError:  # malformed arguments: restore JSON-escaped all the same
            return restore_placeholders(arguments, self.placeholders, json_strings=True)
        restored = _map_strings(value, lambda s: restore_placeholders(s, self.placeholders))
        return arguments if restored == value else json.dumps(restored, ensure_ascii=False)


# --- the gate -----------------------------------------------------------------------------------


class Gate:
    """Checks actions against a GatePolicy. Deny by default.

    Args:
        policy: a GatePolicy, or the path of a YAML file holding one (see ``load_gate_policy``).
        detector: finds PII for ``pii: redact|block`` rules (default: the built-in detector);
            any object with ``name`` and ``detect(text)`` works, e.g. a Presidio adapter.

    Example:
        >>> gate = Gate(GatePolicy(version="v1", rules=(
        ...     GateRule(id="local", effect="allow", destinations=("local",)),)))
        >>> gate.check(Action(kind="call_tier", target="local:qwen")).rule_id
        'local'
        >>> out = Action(kind="call_tier", target="frontier:x", destination="openai:us")
        >>> gate.check(out).rule_id
        'default'
    """

    def __init__(self, policy: GatePolicy | str | Path, *, detector: PiiDetector | None = None):
        self.policy = policy if isinstance(policy, GatePolicy) else load_gate_policy(policy)
        self.detector: PiiDetector = detector or BuiltinPiiDetector()

    @property
    def version(self) -> str:
        return self.policy.version

    def check(self, action: Action, text: str | None = None) -> GateDecision:
        """Decide one action. ``text`` is the payload that would leave (for PII rules)."""
        matched = self._match(action)
        if isinstance(matched, GateDecision):
            return matched
        return self._apply_pii(matched, [text] if text else [])

    def screen(self, action: Action, request: ChatRequest) -> Screened:
        """Decide ``action`` for ``request`` and prepare what may be sent.

        Every text the request carries to a tier (``request.texts()``: message content and
        parts, names, tool-call arguments, tool results, tools, ``response_format``, ``stop``,
        ``user``) is screened, one by one and read together. Allowed: the request as is.
        Redacted: a copy with every finding replaced by a placeholder. Denied (including a
        redaction that failed): ``request`` is None.
        """
        matched = self._match(action)
        if isinstance(matched, GateDecision):
            return Screened(matched, None)
        if matched.pii == "pass":
            return Screened(self._allowed(matched), request)
        texts = request.texts()
        if matched.pii == "block":
            decision = self._apply_pii(matched, texts)
            return Screened(decision, request if decision.allowed else None)
        # Redact straight away: the redactor's own detection decides, and its re-scan of the
        # redacted texts is the fail-closed check.
        redactor = Redactor(detector=self.detector)
        try:
            redacted_texts = redactor.redact_texts(texts)
            redacted = _with_texts(request, texts, redacted_texts) if redactor.findings else None
        except RedactionError as exc:
            logger.warning("redaction failed for %s: %s", action.target, exc)
            failed = self._decide("deny", matched.id, f"redaction failed, blocked: {exc}")
            return Screened(failed, None)
        if redacted is None:
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

    def _placed(self, action: Action) -> tuple[Action, str]:
        """The action with the destination its host says, and a note when that differs from
        its label (an on-premises label on a host that is not, or a derived ``remote:<host>``
        whose host the policy declares on the premises)."""
        host = action.host
        if host is None:
            return action, ""
        policy = self.policy
        if policy.host_on_premises(host):
            if action.destination.startswith(REMOTE_PREFIX):
                return dataclasses.replace(action, destination=LOCAL), ""
            return action, ""
        if not policy.on_premises(action.destination):
            return action, ""
        where = f"{REMOTE_PREFIX}{host}"
        logger.warning(
            "%s is labelled %r but connects to %r, which is neither loopback nor in "
            "on_premises_hosts: treated as %r",
            action.target,
            action.destination,
            host,
            where,
        )
        note = (
            f" (labelled {action.destination!r}, but it connects to {host!r}, which is neither "
            "loopback nor in on_premises_hosts)"
        )
        return dataclasses.replace(action, destination=where), note

    def _check_fixed(self, action: Action, note: str) -> GateDecision | None:
        policy = self.policy
        if policy.air_gapped and not policy.on_premises(action.destination):
            return self._decide(
                "deny",
                "air_gapped",
                f"air-gapped policy: destination {action.destination!r} is off the premises" + note,
            )
        if policy.teams is not None:
            denied = self._check_team(action, policy.teams)
            if denied is not None:
                return denied
        if action.kind == "run_script" or (action.kind == "use_tool" and action.skill is not None):
            return self._check_skill(action)
        return None

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

    def _match(self, action: Action) -> GateDecision | GateRule:
        """A deny decision, or the allow rule that matched (its PII handling still to apply)."""
        action, note = self._placed(action)
        decided = self._check_fixed(action, note)
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
            f"for data class {action.data_class!r}: deny by default{note}",
        )

    def _apply_pii(self, rule: GateRule, texts: Sequence[str]) -> GateDecision:
        if rule.pii == "pass" or not any(texts):
            return self._allowed(rule)
        try:
            found = detect_texts(texts, self.detector)
        except RedactionError as exc:  # the detector crashed: block, never leak
            return self._decide("deny", rule.id, f"{exc}; blocked")
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


def _with_texts(
    request: ChatRequest, originals: Sequence[str], replacements: Sequence[str]
) -> ChatRequest:
    """``request`` with its texts (in ``request.texts()`` order) replaced one for one."""
    pairs = iter(zip(originals, replacements, strict=True))

    def swap(text: str) -> str:
        pair = next(pairs, None)
        if pair is None or pair[0] != text:
            raise RedactionError("the request's texts changed while it was redacted")
        return pair[1]

    out = request.map_texts(swap)
    if next(pairs, None) is not None:
        raise RedactionError("the request's texts changed while it was redacted")
    return out


def _map_strings(value: object, fn: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {fn(k): _map_strings(v, fn) for k, v in value.items()}
    return value


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
    chars = _approx_chars(request)
    usage = Usage(
        prompt_tokens=max(1, chars // 4),  # ~4 characters per token: an estimate, not a bill
        completion_tokens=request.max_tokens or DEFAULT_ESTIMATED_COMPLETION_TOKENS,
    )
    return tier.price.cost(usage, 0.0)


def _approx_chars(request: ChatRequest) -> int:
    """About how many characters ``request`` sends: its messages' text and tool-call arguments
    as written, and its tools' texts (read once per tool object). For the cost estimate only:
    cheaper than ``texts()``, which parses every tool call's arguments."""
    chars = sum(tool.text_chars() for tool in request.tools or ())
    for message in request.messages:
        chars += len(message.text)
        for call in message.tool_calls or ():
            chars += len(call.function.arguments)
    return chars
