"""The README's reliability section: its example runs and its matrix names real tests."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from paxis_router.config.schema import config_from_mapping
from paxis_router.router import Router

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    start = text.index("\n## Reliability\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_test_named_in_the_matrix_exists() -> None:
    named = set(re.findall(r"\b(test_\w+)", section()))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    assert len(named) >= 15
    assert named - {p.stem for p in (ROOT / "tests").rglob("*.py")} <= defined


def test_the_example_builds_a_router() -> None:
    block = re.search(r"```python\n(.*?)```", section(), re.S)
    assert block is not None
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md#reliability", "exec"), namespace)
    router = namespace["router"]
    assert isinstance(router, Router)
    assert [t.name for t in router.tiers] == ["local:qwen", "frontier:gpt-4o"]
    guard = router.tiers[1].resilience
    assert guard is not None and guard.config.breaker.max_open_s == 3600


def test_the_yaml_example_validates() -> None:
    block = re.search(r"```yaml\n(.*?)```", section(), re.S)
    assert block is not None
    cfg = config_from_mapping(yaml.safe_load(block.group(1)), source="README.md")
    assert [t.resilience is not None for t in cfg.tiers] == [True, True]
    assert cfg.policy.outage.mode_for(["legal-review"]) == "refuse"
