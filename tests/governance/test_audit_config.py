"""The ``audit:`` section of a policy file gives the Router its audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router import AuditLog, ConfigError, Gate, Router
from paxis_router.config.schema import load_config


def test_policy_file_audit_and_gate_sections_build_the_router(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.jsonl"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers: [{kind: litellm, model: gpt-4o}]\n"
        f"audit: {{path: '{log}', include_payload: true, fsync: false}}\n"
        "gate: {version: g1, rules: [{id: local, effect: allow, destinations: [local]}]}\n"
    )
    router = Router.from_config(load_config(policy))
    assert isinstance(router.audit, AuditLog)
    assert (router.audit.path, router.audit.include_payload, router.audit.fsync) == (
        log,
        True,
        False,
    )
    assert isinstance(router.gate, Gate)
    assert router.gate.version == "g1"


def test_audit_section_defaults_and_unknown_keys(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("tiers: [{kind: litellm, model: gpt-4o}]\naudit: {}\n")
    cfg = load_config(policy)
    assert cfg.audit is not None
    assert (cfg.audit.path, cfg.audit.include_payload, cfg.audit.fsync) == (
        Path("paxis-audit.jsonl"),
        False,
        True,
    )
    assert Router.from_config(load_config(policy)).gate is None
    policy.write_text("tiers: [{kind: litellm, model: gpt-4o}]\naudit: {paht: x.jsonl}\n")
    with pytest.raises(ConfigError, match=r"policy\.yaml: audit\.paht"):
        load_config(policy)
