"""What a SKILL.md asks for is what the router does: ``paxis-tier`` starts the ladder there,
``paxis-verifier`` adds its checks, ``paxis-policy`` replaces the escalation policy,
``paxis-data-class`` raises the request's class before the gate decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router.config.schema import load_config
from paxis_router.errors import ConfigError, PolicyDenied
from paxis_router.governance.gate import Gate, parse_gate_policy
from paxis_router.router import Router
from paxis_router.skills.library import SkillLibrary
from paxis_router.testing import FakeWorker
from paxis_router.types import ChatRequest


def _skill(root: Path, name: str, metadata: str, body: str = "Do it well.") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: {name} tasks for invoices\nmetadata:\n{metadata}---\n"
        f"# {name}\n{body}\n",
        encoding="utf-8",
    )


def _ladder() -> tuple[FakeWorker, FakeWorker]:
    return FakeWorker(["no"], name="local:w"), FakeWorker(["42"], name="frontier:f")


async def test_paxis_tier_starts_the_ladder_at_that_tier(tmp_path: Path) -> None:
    _skill(tmp_path, "hard-math", "  paxis-tier: frontier:f\n")
    local, frontier = _ladder()
    router = Router(tiers=[local, frontier], skills=SkillLibrary.from_dir(tmp_path))
    result = await router.route(ChatRequest.from_text("hard-math invoices", skill="hard-math"))
    assert (result.tier, len(result.attempts), local.calls) == ("frontier:f", 1, [])


async def test_a_pinned_tier_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    _skill(tmp_path, "odd", "  paxis-tier: local:gone\n")
    router = Router(tiers=list(_ladder()), skills=SkillLibrary.from_dir(tmp_path))
    with pytest.raises(ConfigError, match=r"skill 'odd' pins tier 'local:gone'.*local:w"):
        await router.route(ChatRequest.from_text("q", skill="odd"))


async def test_paxis_data_class_raises_the_class_the_gate_sees(tmp_path: Path) -> None:
    _skill(tmp_path, "payroll", "  paxis-data-class: restricted\n")
    gate = Gate(
        parse_gate_policy(
            {
                "version": "t",
                "rules": [
                    {"id": "no-restricted", "effect": "deny", "data_classes": ["restricted"]},
                    {"id": "rest", "effect": "allow"},
                ],
            }
        )
    )
    local, frontier = _ladder()
    router = Router(tiers=[local, frontier], skills=SkillLibrary.from_dir(tmp_path), gate=gate)
    with pytest.raises(PolicyDenied):
        await router.route(ChatRequest.from_text("q", skill="payroll", data_class="public"))
    assert local.calls == [] and frontier.calls == []


async def test_a_skill_never_lowers_the_class_of_a_request(tmp_path: Path) -> None:
    _skill(tmp_path, "faq", "  paxis-data-class: public\n")
    _skill(tmp_path, "pci-forms", "  paxis-data-class: pci\n")
    local = FakeWorker(["ok", "ok", "ok"], name="local:w")
    router = Router(tiers=[local], skills=SkillLibrary.from_dir(tmp_path))
    await router.route(ChatRequest.from_text("q", skill="faq", data_class="restricted"))
    await router.route(ChatRequest.from_text("q", skill="pci-forms", data_class="internal"))
    await router.route(ChatRequest.from_text("q", skill="pci-forms", data_class="restricted"))
    assert [c.data_class for c in local.calls] == ["restricted", "pci", "restricted"]


def _policy_file(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "skills: {dir: skills}\ntiers:\n  - {kind: litellm, name: 'frontier:f', model: gpt-4o}\n",
        encoding="utf-8",
    )
    return policy


def test_skill_verifiers_and_policy_are_built_by_the_policy_file(tmp_path: Path) -> None:
    _skill(
        tmp_path / "skills",
        "digits",
        "  paxis-verifier: '[{kind: regex, must_match: \"^[0-9]+$\"}]'\n"
        "  paxis-policy: '{on_exhausted: return_best}'\n",
    )
    built = Router.from_config(load_config(_policy_file(tmp_path)))
    assert built.skill_hints is not None
    router = Router(  # the policy's router, with a fake at the model seam
        tiers=[FakeWorker(["no"], name="local:w")],
        skills=built.skills,
        skill_hints=built.skill_hints,
        policy=built.policy,
    )
    result = router.route_sync(ChatRequest.from_text("q", skill="digits"))
    # the skill's regex rejects "no"; its policy returns the best answer instead of raising
    assert (result.content, result.accepted) == ("no", False)
    assert [v.verifier for v in result.attempts[0].verdicts] == ["regex"]
    plain = Router(tiers=[FakeWorker(["no"], name="local:w")], skills=built.skills)
    assert plain.route_sync(ChatRequest.from_text("q", skill="digits")).accepted  # no hints


def test_a_wrong_hint_is_a_config_error_at_load_naming_the_skill(tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    _skill(skills, "bad", "  paxis-policy: '{escalate_when: not_a_predicate}'\n")
    with pytest.raises(ConfigError, match=r"bad/SKILL.md.*paxis-policy.*not_a_predicate"):
        Router.from_config(load_config(_policy_file(tmp_path)), base_dir=tmp_path)
