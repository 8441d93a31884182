"""The README's quickstart, vLLM/provider and Policy YAML sections: their examples run."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from paxis_router.config.schema import config_from_mapping
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.router import Router

ROOT = Path(__file__).resolve().parents[1]


def _section(title: str) -> str:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = next(t for f in files if f"\n## {title}\n" in (t := f.read_text(encoding="utf-8")))
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _block(title: str, language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", _section(title), re.S)
    assert found is not None
    return found.group(1)


def test_quickstart_example_routes_and_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes paxis-ledger.db where it runs
    namespace: dict[str, object] = {"print": lambda *a: None}
    exec(compile(_block("In Python", "python"), "README#in-python", "exec"), namespace)
    result = namespace["result"]
    assert getattr(result, "content", None) == "42"
    assert getattr(result, "tier", None) == "frontier:gpt-4o"
    with SQLiteLedger(tmp_path / "paxis-ledger.db") as ledger:
        assert [r.tier for r in ledger.rows()] == ["local:qwen", "frontier:gpt-4o"]


def test_vllm_example_builds_the_same_ladder_as_the_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    monkeypatch.chdir(tmp_path)  # the bundled policy's ledger is relative to the CWD
    namespace: dict[str, object] = {}
    code = _block("Point the worker at vLLM and the frontier at a provider", "python")
    exec(compile(code, "README#vllm", "exec"), namespace)
    by_hand, from_file = namespace["router"], namespace["same"]
    assert isinstance(by_hand, Router)
    assert isinstance(from_file, Router)
    assert [(t.name, t.price, t.destination) for t in by_hand.tiers] == [
        (t.name, t.price, t.destination) for t in from_file.tiers
    ]
    assert by_hand.tiers[0].price is not None
    assert by_hand.tiers[0].price.cost(None, 1.0) is None  # throughput pricing needs tokens
    assert from_file.tiers[1].price is not None
    assert from_file.tiers[1].price.cost(None, 0.0) is None
    assert (tmp_path / "paxis-ledger.db").is_file()
    for sink in from_file.sinks:
        assert isinstance(sink, SQLiteLedger)
        sink.close()


def test_policy_yaml_example_validates() -> None:
    cfg = config_from_mapping(yaml.safe_load(_block("Policy YAML", "yaml")), source="README")
    assert [t.kind for t in cfg.tiers] == ["local", "litellm", "replay"]
    assert cfg.policy.price_overrides["gpt-4o"].input_usd_per_mtok == Decimal("2.00")
    assert cfg.gate is not None
    assert cfg.skills is not None
    assert cfg.skills.k == 3
