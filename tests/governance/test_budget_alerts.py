"""Budget alerts: a real Router recording into a real SQLite ledger crosses thresholds, and
Budgets logs each one and calls on_alert once per team, period and threshold."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.errors import ConfigError
from paxis_router.governance.budgets import BudgetAlert, Budgets
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.pricing import TokenPrice
from paxis_router.reports.budget_view import budget_statuses
from paxis_router.router import Router
from paxis_router.testing import FakeVerifier, FakeWorker
from paxis_router.types import ChatRequest

# $0.001 per token: "q" (1 token) answered in two words costs 3 tokens = $0.003 per route.
PRICE = TokenPrice(Decimal("0.001"), Decimal("0.001"))
SECTION = {"alerts": [0.5, 1.0], "teams": {"claims": {"day": "0.01"}, "support": {"day": "1"}}}


def make_router(ledger: SQLiteLedger, alerts: list[BudgetAlert]) -> tuple[Router, Budgets]:
    budgets = Budgets.from_config(SECTION, ledger=ledger, on_alert=alerts.append)
    worker = FakeWorker(["worker answer"], name="local:w", price=PRICE)
    router = Router(tiers=[worker], verifiers=[FakeVerifier([True])], ledger=ledger,
                    budgets=budgets)  # fmt: skip
    return router, budgets


def test_each_threshold_fires_once_as_the_router_spends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    fired: list[BudgetAlert] = []
    router, budgets = make_router(ledger, fired)
    caplog.set_level(logging.WARNING, logger="paxis_router.governance.budgets")
    seen = []
    for _ in range(6):
        router.route_sync(ChatRequest.from_text("q", team="claims"))
        router.route_sync(ChatRequest.from_text("q", team="support"))  # far below its budget
        seen.append(len(fired))
    # $0.003 a route: 50% ($0.005) is reached by the 2nd route ($0.006), 100% by the 4th
    assert seen == [0, 1, 1, 2, 2, 2]
    assert [(a.team, a.period, a.threshold, a.spent_usd) for a in fired] == [
        ("claims", "day", Decimal("0.5"), Decimal("0.006")),
        ("claims", "day", Decimal(1), Decimal("0.012")),
    ]
    warnings = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert warnings == [
        "budget alert: team 'claims' reached 50% of its daily budget of $0.01 (spent $0.0060 "
        f"since {fired[0].period_start.date().isoformat()})",
        "budget alert: team 'claims' reached 100% of its daily budget of $0.01 (spent $0.0120 "
        f"since {fired[0].period_start.date().isoformat()})",
    ]
    assert [a.threshold for a in budgets.alerts("claims")] == [Decimal("0.5"), Decimal(1)]
    assert budgets.alerts("support") == []
    assert len(fired) == 2  # reading the state fires nothing again
    assert ledger.count() == 12


def test_a_new_process_fires_the_thresholds_its_ledger_already_holds_once(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    router, _ = make_router(ledger, [])
    for _ in range(2):
        router.route_sync(ChatRequest.from_text("q", team="claims"))  # $0.006: over 50%
    again: list[BudgetAlert] = []
    restarted, _ = make_router(ledger, again)
    restarted.route_sync(ChatRequest.from_text("q", team="claims"))  # $0.009
    restarted.route_sync(ChatRequest.from_text("q", team="claims"))  # $0.012
    assert [(a.threshold, a.spent_usd) for a in again] == [
        (Decimal("0.5"), Decimal("0.006")),  # read from the ledger at the first check
        (Decimal(1), Decimal("0.012")),
    ]


def test_the_report_shows_the_thresholds_the_router_reached(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    fired: list[BudgetAlert] = []
    router, budgets = make_router(ledger, fired)
    for _ in range(2):
        router.route_sync(ChatRequest.from_text("q", team="claims"))
    (claims, support) = budget_statuses(ledger, budgets.budgets, as_of=datetime.now(UTC))
    assert claims.team == "claims" and claims.spent_usd == Decimal("0.006")
    assert [t.threshold for t in claims.alerts] == [a.threshold for a in fired] == [Decimal("0.5")]
    assert support.alerts == []


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"alerts": [], "teams": {}}, "budgets.alerts"),
        ({"alerts": "80%", "teams": {}}, "budgets.alerts"),
        ({"teams": {"claims": {"day": "1", "alerts": [0]}}}, "budgets.teams.claims.alerts"),
        ({"teams": {"claims": {"alerts": [0.5]}}}, "budgets.teams.claims"),
    ],
)
def test_bad_alert_thresholds_name_the_field(section: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        Budgets.from_config(section)
