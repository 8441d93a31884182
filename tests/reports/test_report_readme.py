"""The README's cost-report section: its examples run."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from paxis_router.governance.budgets import Budget, Budgets
from paxis_router.reports.cost_report import CostReport

README = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
TITLE = "Cost reports, budgets, tracing and a shared ledger"


def block(language: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {TITLE}\n")
    end = text.find("\n## ", start + 1)
    found = re.search(rf"```{language}\n(.*?)```", text[start : end if end != -1 else None], re.S)
    assert found is not None
    return found.group(1)


def test_python_example_routes_labels_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes paxis-ledger.db where it runs
    namespace: dict[str, object] = {"print": lambda *a: None}
    exec(compile(block("python"), "README#cost-reports", "exec"), namespace)
    report = namespace["report"]
    assert isinstance(report, CostReport)
    assert (report.routes, report.attempts, report.escalation_rate) == (1, 2, 1.0)
    assert report.accuracy == 1.0
    # 3 + 1 tokens at $0.10/M locally, then 3 in at $2.50/M and 1 out at $10/M
    assert report.total_cost_usd == Decimal("0.0000004") + Decimal("0.0000175")
    assert '"total_cost_usd": "0.0000179"' in report.to_json()  # never 1.79E-5
    assert [g.key for g in report.breakdowns["tier"]] == ["frontier:gpt-4o", "local:qwen"]


def test_yaml_example_is_a_valid_budgets_section() -> None:
    section = yaml.safe_load(block("yaml"))["budgets"]
    assert Budgets.from_config(section).budgets == (
        Budget("claims", "day", Decimal("5.00"), "cap"),
        Budget("claims", "month", Decimal("100"), "cap"),
    )
