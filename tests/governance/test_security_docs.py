"""docs/security.md's gate section: its examples run and its policies load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from paxis_router.governance.gate import parse_gate_policy

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def gate_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## Policy gates, PII redaction and the audit log\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_python_example_redacts_and_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # it writes audit.jsonl in the working directory
    (code,) = re.findall(r"```python\n(.*?)```", gate_section(), re.S)
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/security.md", "exec"), namespace)  # its asserts are the check
    assert (tmp_path / "audit.jsonl").is_file()


def test_every_gate_policy_in_the_section_loads() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", gate_section(), re.S)
    policies = [parse_gate_policy(yaml.safe_load(b)["gate"], source="docs/security.md",
                                  prefix="gate.") for b in blocks]  # fmt: skip
    assert len(policies) == 2
    assert policies[1].hosts.contains("gpu02.gpu.corp.example")
    assert not policies[1].hosts.contains("gpu01.corp.example.evil.com")
