"""The CostReport renderers: JSON keys, CSV, Markdown and rich tables carry the same figures."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.types import CallRecord, Decision

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def one_route(route: str, *, cost: str | None, team: str = "claims") -> CallRecord:
    return CallRecord(
        route_id=route,
        request_id=route,
        attempt_index=0,
        ts=T0,
        tier="local:qwen",
        tier_index=0,
        model="qwen",
        decision=Decision.ACCEPT,
        reason="accept",
        final=True,
        team=team,
        latency_s=0.2,
        cost_usd=None if cost is None else Decimal(cost),
        counterfactual_usd=Decimal("0.01"),
    )


@pytest.fixture
def built(tmp_path: Path) -> report.CostReport:
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record_many(
        [one_route("a", cost="0.001"), one_route("b", cost=None), one_route("c", cost="0.003",
                                                                            team="legal")]
    )  # fmt: skip
    return report.build(ledger, by=("team",), now=T0)


def test_json_has_the_documented_keys_with_exact_money(built: report.CostReport) -> None:
    data = json.loads(built.to_json())
    for key in ("total_cost_usd", "counterfactual_cost_usd", "savings_ratio", "escalation_rate",
                "routes", "attempts", "unknown_cost_attempts", "prices_complete", "breakdowns",
                "verifiers", "top_escalation_reasons", "latency_p50_s", "accuracy"):  # fmt: skip
        assert key in data
    assert data["total_cost_usd"] == "0.004"  # a decimal string, never a float
    assert data["counterfactual_cost_usd"] == "0.03"
    assert data["savings_ratio"] == 7.5
    assert (data["routes"], data["attempts"], data["escalation_rate"]) == (3, 3, 0.0)
    assert data["unknown_cost_attempts"] == 1
    assert data["prices_complete"] is False
    assert [g["key"] for g in data["breakdowns"]["team"]] == ["claims", "legal"]


def test_csv_has_a_total_row_and_one_row_per_group(built: report.CostReport) -> None:
    rows = list(csv.DictReader(io.StringIO(built.to_csv())))
    assert [(r["dimension"], r["key"]) for r in rows] == [
        ("all", "all"), ("team", "claims"), ("team", "legal"),
    ]  # fmt: skip
    assert rows[1]["cost_usd"] == "0.001"
    assert rows[1]["unknown_cost_attempts"] == "1"
    assert rows[2]["accuracy"] == ""  # unknown, not 0


def test_markdown_flags_unknown_prices(built: report.CostReport) -> None:
    text = built.to_markdown()
    assert "- Spend: $0.0040 + 1 unpriced" in text
    assert "WARNING: some rows have no known price" in text
    assert "| claims | 2 | 2 | $0.0010 + 1 unpriced |" in text
    assert "- Saved: $0.0260 (7.5×)" in text


def test_rich_tables_hold_the_breakdowns(built: report.CostReport) -> None:
    from rich.console import Console

    tables = built.to_rich()
    assert [t.title for t in tables] == ["Cost report", "By team"]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    for table in tables:
        console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]  # a StringIO we passed in
    assert "legal" in out and "$0.0030" in out


def test_totals_row_matches_the_flat_fields(built: report.CostReport) -> None:
    assert built.totals.cost_usd == built.total_cost_usd
    assert built.totals.routes == built.routes
