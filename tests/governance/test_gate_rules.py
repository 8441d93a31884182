"""Table tests of the gate's rules, and loading gate policies from YAML."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.errors import ConfigError
from paxis_router.governance.gate import (
    Action,
    ActionKind,
    Gate,
    GatePolicy,
    load_gate_policy,
    parse_gate_policy,
)
from paxis_router.governance.pii import PiiFinding
from paxis_router.pricing import TokenPrice
from paxis_router.testing import FakeWorker
from paxis_router.types import ChatRequest
from paxis_router.workers.base import Tier

REPO = Path(__file__).resolve().parents[2]

POLICY = parse_gate_policy(
    {
        "version": "test-7",
        "teams": {
            "claims": {"providers": ["openai"], "models": ["local-*", "gpt-4o*"]},
            "research": {"providers": ["openai", "anthropic"]},
        },
        "skills": {
            "pdf": {"scripts": ["scripts/extract.py"], "tools": ["read_file"]},
        },
        "rules": [
            {"id": "restricted-home", "effect": "deny", "data_classes": ["restricted"],
             "destinations": ["!local"], "reason": "restricted data stays on the premises"},
            {"id": "local-all", "effect": "allow", "destinations": ["local"]},
            {"id": "public-out", "effect": "allow", "data_classes": ["public"],
             "destinations": ["openai:*", "anthropic:*"]},
            {"id": "internal-out", "effect": "allow", "data_classes": ["internal"],
             "destinations": ["openai:eu", "anthropic:eu"], "pii": "redact"},
            {"id": "confidential-out", "effect": "allow", "data_classes": ["confidential"],
             "destinations": ["openai:eu"], "pii": "block"},
        ],
    }
)  # fmt: skip


def act(
    destination: str = "local",
    *,
    data_class: str = "internal",
    principal: str | None = "research",
    kind: ActionKind = "call_tier",
    target: str = "tier",
    model: str | None = "gpt-4o",
    skill: str | None = None,
    cost: str | None = None,
) -> Action:
    return Action(
        kind=kind,
        target=target,
        destination=destination,
        principal=principal,
        data_class=data_class,
        model=model,
        skill=skill,
        estimated_cost_usd=Decimal(cost) if cost is not None else None,
    )


PII = "contact bob@example.com"


@pytest.mark.parametrize(
    ("action", "text", "effect", "rule_id"),
    [
        # data classification x destination
        (act("local", data_class="restricted"), PII, "allow", "local-all"),
        (act("openai:us", data_class="restricted"), None, "deny", "restricted-home"),
        (act("openai:eu", data_class="restricted"), None, "deny", "restricted-home"),
        (act("openai:us", data_class="public"), PII, "allow", "public-out"),
        (act("anthropic:us", data_class="public"), None, "allow", "public-out"),
        (act("openai:us", data_class="internal"), None, "deny", "default"),
        (act("mistral:eu", data_class="public"), None, "deny", "teams.research.providers"),
        (act("local", data_class="secret-sauce"), None, "allow", "local-all"),
        # PII handling by rule
        (act("openai:eu", data_class="internal"), PII, "redact", "internal-out"),
        (act("openai:eu", data_class="internal"), "no pii here", "allow", "internal-out"),
        (act("openai:eu", data_class="internal"), None, "allow", "internal-out"),
        (act("openai:eu", data_class="confidential"), PII, "deny", "confidential-out"),
        (act("openai:eu", data_class="confidential"), "2024-03-15", "allow", "confidential-out"),
        # teams: providers and models
        (act("anthropic:eu", principal="claims"), None, "deny", "teams.claims.providers"),
        (act("openai:eu", principal="claims", model="o1"), None, "deny", "teams.claims.models"),
        (act("local", principal="claims", model="local-qwen"), None, "allow", "local-all"),
        (act("local", principal="claims", model="qwen"), None, "deny", "teams.claims.models"),
        (act("anthropic:eu", principal="research"), None, "allow", "internal-out"),
        (act("local", principal="intern"), None, "deny", "teams.unknown"),
        (act("local", principal=None), None, "deny", "teams.unknown"),
        # per-skill allow-lists
        (act(kind="run_script", target="scripts/extract.py", skill="pdf"), None, "allow",
         "local-all"),
        (act(kind="run_script", target="scripts/rm.sh", skill="pdf"), None, "deny",
         "skills.pdf.scripts"),
        (act(kind="use_tool", target="read_file", skill="pdf"), None, "allow", "local-all"),
        (act(kind="use_tool", target="shell", skill="pdf"), None, "deny", "skills.pdf.tools"),
        (act(kind="run_script", target="x.py", skill="web"), None, "deny", "skills.unlisted"),
        (act(kind="run_script", target="x.py", skill=None), None, "deny", "skills.unlisted"),
    ],
)  # fmt: skip
def test_gate_rule_table(action: Action, text: str | None, effect: str, rule_id: str) -> None:
    decision = Gate(POLICY).check(action, text)
    assert (decision.effect, decision.rule_id, decision.policy_version) == (
        effect,
        rule_id,
        "test-7",
    )
    assert decision.reason


def test_deny_by_default_with_no_rules() -> None:
    decision = Gate(GatePolicy(version="empty")).check(act("local"))
    assert (decision.effect, decision.rule_id) == ("deny", "default")
    assert "deny by default" in decision.reason


@pytest.mark.parametrize(
    ("destination", "effect", "rule_id"),
    [
        ("local", "allow", "everything"),
        ("onprem:dc1", "allow", "everything"),
        ("openai:eu", "deny", "air_gapped"),
        ("vllm:cloud", "deny", "air_gapped"),
    ],
)
def test_air_gapped_overrides_any_allow_rule(destination: str, effect: str, rule_id: str) -> None:
    policy = parse_gate_policy(
        {
            "version": "ag",
            "air_gapped": True,
            "premises": ["local", "onprem:*"],
            "rules": [{"id": "everything", "effect": "allow"}],
        }
    )
    decision = Gate(policy).check(act(destination, data_class="public"))
    assert (decision.effect, decision.rule_id) == (effect, rule_id)


def test_first_matching_rule_wins() -> None:
    policy = parse_gate_policy(
        {
            "version": "order",
            "rules": [
                {"id": "no-o1", "effect": "deny", "models": ["o1*"]},
                {"id": "all", "effect": "allow"},
            ],
        }
    )
    gate = Gate(policy)
    assert gate.check(act("openai:us", model="o1-preview")).rule_id == "no-o1"
    assert gate.check(act("openai:us", model="gpt-4o")).rule_id == "all"


def test_the_gate_keeps_no_budget_whatever_is_spent() -> None:
    gate = Gate(POLICY)
    costly = act("local", principal="claims", model="local-a", cost="1000000")
    assert gate.check(costly).rule_id == "local-all"
    assert not hasattr(gate, "charge")  # spend is counted by Budgets, from the ledger


def test_pii_detector_crash_blocks() -> None:
    class Broken:
        name = "broken"

        def detect(self, text: str) -> Sequence[PiiFinding]:
            raise OSError("model file missing")

    decision = Gate(POLICY, detector=Broken()).check(act("openai:eu"), "hello")
    assert decision.effect == "deny"
    assert decision.rule_id == "internal-out"
    assert "PII detector 'broken' failed: OSError: model file missing; blocked" in decision.reason


def test_action_for_tier_estimates_cost_from_the_price() -> None:
    tier = Tier(
        worker=FakeWorker(["x"], name="frontier:gpt-4o", model="gpt-4o"),
        price=TokenPrice.per_million("2", "10"),
        destination="openai:us",
    )
    request = ChatRequest.from_text("a" * 400, team="claims", data_class="public")
    request = request.model_copy(update={"max_tokens": 100})
    action = Action.for_tier(tier, request, skill="math")
    assert action == Action(
        kind="call_tier",
        target="frontier:gpt-4o",
        destination="openai:us",
        principal="claims",
        data_class="public",
        model="gpt-4o",
        skill="math",
        # 402 JSON chars // 4 = 100 prompt tokens x $2/M + 100 completion tokens x $10/M
        estimated_cost_usd=Decimal("0.001200"),
    )
    assert action.provider == "openai"
    unpriced = Action.for_tier(Tier(worker=FakeWorker(["x"])), request)
    assert unpriced.estimated_cost_usd is None


# --- loading ------------------------------------------------------------------------------------


def test_sovereign_policy_file_loads() -> None:
    policy = load_gate_policy(REPO / "policies" / "sovereign.yaml")
    assert policy.air_gapped is True
    assert policy.premises == ("local",)
    assert [r.id for r in policy.rules] == ["local-workers"]


def test_gate_accepts_a_path(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("version: bare\nrules: [{id: a, effect: allow}]\n")
    assert Gate(path).version == "bare"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("gate: {version: v, rules: [{id: a, effect: maybe}]}", r"gate\.rules\.0\.effect: "),
        ("gate: {version: v, colour: red}", r"gate\.colour: Extra inputs are not permitted"),
        ("gate: {rules: []}", r"gate\.version: Field required"),
        ("gate: [1, 2]", r"gate: a gate policy must be a mapping"),
        ("version: v\nrules: [{id: a, effect: allow, pii: scrub}]", r": rules\.0\.pii: "),
        (
            "version: v\nrules: [{id: a, effect: allow}, {id: a, effect: deny}]",
            r"rules: duplicate rule id 'a'",
        ),
        (
            "gate: {version: v, budgets: {t: {limit_usd: 1}}}",
            r"gate\.budgets: the gate no longer keeps budgets: .* Replace `gate: \{budgets: "
            r"\{claims: \{limit_usd: \"500\"\}\}\}` with `budgets: \{teams: \{claims: \{month: "
            r"\"500\"\}\}\}`",
        ),
        ('version: v\non_premises_hosts: ["http://gpu01"]', r"on_premises_hosts: .*'http://gpu01'"),
        ("version: v\non_premises_hosts: [10.0.0.0/33]", r"not a host name, an IP address, a CIDR"),
        ("version: [unclosed", "not valid YAML"),
    ],
)
def test_bad_policy_files_name_file_and_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message) as info:
        load_gate_policy(path)
    assert str(path) in str(info.value)


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read gate policy"):
        load_gate_policy(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("data_class", "destination", "text", "effect", "rule_id"),
    [
        ("restricted", "openai", "hello", "deny", "restricted-stays-local"),
        ("restricted", "local", "mail a@b.io", "allow", "local-workers"),
        ("public", "openai", "mail a@b.io", "allow", "public-to-frontier"),
        ("internal", "openai:eu", "mail a@b.io", "redact", "internal-to-frontier"),
        ("internal", "openai", "no pii", "allow", "internal-to-frontier"),
        ("confidential", "openai", "mail a@b.io", "deny", "confidential-to-frontier"),
        ("confidential", "openai", "no pii", "allow", "confidential-to-frontier"),
        ("public", "anthropic", "hello", "deny", "default"),
        ("top-secret", "openai", "hello", "deny", "default"),
    ],
)
def test_bundled_default_gate(
    data_class: str, destination: str, text: str, effect: str, rule_id: str
) -> None:
    gate = Gate(REPO / "policies" / "default.yaml")
    decision = gate.check(act(destination, data_class=data_class, principal="any"), text)
    assert (decision.effect, decision.rule_id, decision.policy_version) == (
        effect,
        rule_id,
        "default-2026-11-28",
    )
