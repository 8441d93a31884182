"""Team budgets: parsing, tracking, and the router stopping escalation or refusing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.errors import BudgetExceeded, ConfigError
from paxis_router.governance.budgets import Budget, Budgets, describe
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.pricing import TokenPrice
from paxis_router.reports import cost_report as report
from paxis_router.router import Router
from paxis_router.testing import FakeVerifier, FakeWorker
from paxis_router.types import CallRecord, ChatRequest, Decision

# $0.001 per token: "q" (1 token) answered in two words costs 3 tokens = $0.003 per attempt.
PRICE = TokenPrice(Decimal("0.001"), Decimal("0.001"))
NOV_15 = datetime(2026, 11, 15, 12, tzinfo=UTC)


def spend(team: str, usd: str, ts: datetime, route: str = "r") -> CallRecord:
    return CallRecord(
        route_id=route,
        request_id=route,
        attempt_index=0,
        ts=ts,
        tier="local:w",
        tier_index=0,
        model="w",
        decision=Decision.ACCEPT,
        reason="accept",
        final=True,
        team=team,
        cost_usd=Decimal(usd),
    )


def ladder(verdicts: list[bool]) -> tuple[FakeWorker, FakeWorker, FakeVerifier]:
    local = FakeWorker(["worker answer"], name="local:w", price=PRICE)
    top = FakeWorker(["frontier answer"], name="frontier:f", price=PRICE)
    return local, top, FakeVerifier(verdicts)


def test_a_spent_budget_stops_escalation_and_the_ledger_and_report_show_it(
    tmp_path: Path,
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    budgets = Budgets.from_config({"teams": {"claims": {"day": "0.005"}}}, ledger=ledger)
    local, top, verifier = ladder([False, True, False])
    router = Router(tiers=[local, top], verifiers=[verifier], ledger=ledger, budgets=budgets)

    first = router.route_sync(ChatRequest.from_text("q", team="claims"))
    assert (first.content, first.budget_capped) == ("frontier answer", False)
    assert budgets.spent_usd("claims", "day") == Decimal("0.006")

    second = router.route_sync(ChatRequest.from_text("q", team="claims"))
    assert second.content == "worker answer"
    assert second.budget_capped is True
    assert second.decision is Decision.STOP
    assert "has used up its daily budget of $0.005" in second.reason
    assert len(top.calls) == 1  # the frontier was not called for the second route
    (row,) = ledger.rows(route_id=second.route_id)
    assert (row.budget_capped, row.final, row.decision) == (True, True, Decision.STOP)
    built = report.build(ledger, by=("team",))
    assert built.budget_capped_routes == 1
    assert built.breakdowns["team"][0].budget_capped_routes == 1


def test_other_teams_still_escalate(tmp_path: Path) -> None:
    budgets = Budgets.from_config({"teams": {"claims": {"day": "0"}}})
    local, top, verifier = ladder([False, True])
    router = Router(tiers=[local, top], verifiers=[verifier], budgets=budgets)
    result = router.route_sync(ChatRequest.from_text("q", team="support"))
    assert (result.content, result.budget_capped) == ("frontier answer", False)


def test_refuse_mode_refuses_a_new_route_once_spent(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record(spend("claims", "0.01", datetime.now(UTC)))  # spent earlier today
    section = {"on_exhausted": "refuse", "teams": {"claims": {"day": "0.01"}}}
    budgets = Budgets.from_config(section, ledger=ledger)
    local, top, verifier = ladder([True])
    router = Router(tiers=[local, top], verifiers=[verifier], ledger=ledger, budgets=budgets)
    with pytest.raises(BudgetExceeded, match="'claims' has used up its daily budget") as info:
        router.route_sync(ChatRequest.from_text("q", team="claims"))
    assert info.value.team == "claims"
    assert local.calls == []
    assert ledger.count() == 1


def test_refuse_mode_mid_route_records_the_attempt_then_refuses(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    section = {"teams": {"claims": {"month": "0.002", "on_exhausted": "refuse"}}}
    budgets = Budgets.from_config(section, ledger=ledger)
    local, top, verifier = ladder([False])
    router = Router(tiers=[local, top], verifiers=[verifier], ledger=ledger, budgets=budgets)
    with pytest.raises(BudgetExceeded, match=r"monthly budget of \$0\.002; escalation refused"):
        router.route_sync(ChatRequest.from_text("q", team="claims"))
    (row,) = ledger.rows()
    assert (row.budget_capped, row.decision, row.cost_usd) == (
        True,
        Decision.STOP,
        Decimal("0.003"),
    )
    assert top.calls == []


def test_spend_is_tracked_in_memory_per_period() -> None:
    tracked = Budgets(
        [Budget("claims", "day", Decimal("1")), Budget("claims", "month", Decimal("2"))],
        clock=lambda: NOV_15,
    )
    tracked.record(spend("claims", "0.9", NOV_15))
    tracked.record(spend("claims", "0.5", NOV_15 - timedelta(days=1)))  # same month
    tracked.record(spend("claims", "5", NOV_15 - timedelta(days=30)))  # October
    assert tracked.spent_usd("claims", "day") == Decimal("0.9")
    assert tracked.spent_usd("claims", "month") == Decimal("1.4")
    assert tracked.exhausted("claims") is None
    day_budget = tracked.exhausted("claims", extra_usd=Decimal("0.1"))
    assert day_budget == Budget("claims", "day", Decimal("1"))
    assert tracked.exhausted(None) is None


def test_ledger_spend_counts_only_the_current_period(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record(spend("claims", "0.7", NOV_15 - timedelta(hours=1), "a"))
    ledger.record(spend("claims", "0.2", NOV_15 - timedelta(days=1), "b"))
    ledger.record(spend("support", "9", NOV_15, "c"))
    budgets = Budgets.from_config({"teams": {"claims": {"day": "1", "month": "1"}}}, ledger=ledger)
    budgets = Budgets(budgets.budgets, ledger=ledger, clock=lambda: NOV_15)
    assert budgets.spent_usd("claims", "day") == Decimal("0.7")
    assert budgets.spent_usd("claims", "month") == Decimal("0.9")
    budgets.record(spend("claims", "0.1", NOV_15, "d"))  # recorded after loading: added
    assert budgets.spent_usd("claims", "month") == Decimal("1.0")
    assert budgets.exhausted("claims") == Budget("claims", "month", Decimal("1"))


def test_unknown_prices_add_nothing(caplog: pytest.LogCaptureFixture) -> None:
    budgets = Budgets([Budget("claims", "day", Decimal("1"))], clock=lambda: NOV_15)
    budgets.record(replace(spend("claims", "0", NOV_15), cost_usd=None))
    assert budgets.spent_usd("claims", "day") == Decimal(0)
    assert "has no known price" in caplog.text


@pytest.mark.parametrize(
    ("section", "field", "message"),
    [
        ([], "budgets", "must be a mapping"),
        ({"teams": {}, "extra": 1}, "budgets", "unknown keys"),
        ({"on_exhausted": "warn"}, "budgets.on_exhausted", "must be cap or refuse"),
        ({"teams": ["claims"]}, "budgets.teams", "mapping of team"),
        ({"teams": {"claims": {}}}, "budgets.teams.claims", "give day"),
        ({"teams": {"claims": {"week": 1}}}, "budgets.teams.claims", "unknown keys"),
        ({"teams": {"claims": {"day": "lots"}}}, "budgets.teams.claims.day", "not a dollar"),
        ({"teams": {"claims": {"day": -1}}}, "budgets.teams.claims.day", "non-negative"),
    ],
)
def test_bad_budget_sections_name_the_field(section: object, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Budgets.from_config(section, source="policy.yaml")
    assert info.value.field == field
    assert str(info.value).startswith(f"policy.yaml: {field}: ")


def test_parsed_budgets_and_description() -> None:
    section = {"on_exhausted": "refuse", "teams": {"a": {"day": "5", "month": 100}}}
    assert Budgets.from_config(section).budgets == (
        Budget("a", "day", Decimal("5"), "refuse"),
        Budget("a", "month", Decimal("100"), "refuse"),
    )
    monthly = Budget("a", "month", Decimal("100"))
    assert describe(monthly, Decimal("101.5")) == (
        "team 'a' has used up its monthly budget of $100 (spent $101.5000)"
    )
    assert monthly.period_start(NOV_15) == datetime(2026, 11, 1, tzinfo=UTC)
