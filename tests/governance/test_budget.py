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


# --- periods reset (issue 16: one budget system, windows that end) -------------------------------


class Clock:
    """An injected UTC clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_day_budget_resets_at_utc_midnight_and_a_month_budget_on_the_first() -> None:
    clock = Clock(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    budgets = Budgets(
        [Budget("claims", "day", Decimal("1")), Budget("claims", "month", Decimal("3"))],
        clock=clock,
    )
    budgets.record(spend("claims", "0.9", clock.now - timedelta(days=1), "a"))  # Nov 29
    budgets.record(spend("claims", "0.95", clock.now, "b"))  # Nov 30, 23:59:59
    assert budgets.spent_usd("claims", "day") == Decimal("0.95")
    assert budgets.spent_usd("claims", "month") == Decimal("1.85")
    assert budgets.exhausted("claims", extra_usd=Decimal("0.05")) == budgets.budgets[0]

    clock.now = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # a new day and a new month
    assert budgets.spent_usd("claims", "day") == Decimal(0)
    assert budgets.spent_usd("claims", "month") == Decimal(0)
    assert budgets.exhausted("claims", extra_usd=Decimal("0.99")) is None
    budgets.record(spend("claims", "0.5", clock.now, "c"))

    clock.now = datetime(2026, 12, 2, 8, tzinfo=UTC)  # a new day, the same month
    budgets.record(spend("claims", "0.25", clock.now, "d"))
    assert budgets.spent_usd("claims", "day") == Decimal("0.25")
    assert budgets.spent_usd("claims", "month") == Decimal("0.75")


def test_a_new_period_reads_its_spend_from_the_ledger_again(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    clock = Clock(datetime(2026, 11, 15, 22, tzinfo=UTC))
    budgets = Budgets([Budget("claims", "day", Decimal("1"))], ledger=ledger, clock=clock)
    ledger.record(spend("claims", "0.6", clock.now, "a"))
    assert budgets.spent_usd("claims", "day") == Decimal("0.6")  # read from the ledger
    ledger.record(spend("claims", "0.3", clock.now, "b"))
    budgets.record(spend("claims", "0.3", clock.now, "b"))  # the router records into both
    assert budgets.spent_usd("claims", "day") == Decimal("0.9")

    # Another process spent 0.7 just after midnight; this one reads it when its day begins.
    after_midnight = datetime(2026, 11, 16, 0, 5, tzinfo=UTC)
    ledger.record(spend("claims", "0.7", after_midnight, "c"))
    clock.now = datetime(2026, 11, 16, 9, tzinfo=UTC)
    assert budgets.spent_usd("claims", "day") == Decimal("0.7")
    assert budgets.exhausted("claims", extra_usd=Decimal("0.3")) == budgets.budgets[0]
    assert budgets.exhausted("claims", extra_usd=Decimal("0.2")) is None


def test_yesterdays_spend_does_not_cap_todays_routes(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    yesterday = datetime.now(UTC) - timedelta(days=1, hours=1)
    ledger.record(spend("claims", "50", yesterday))  # far over the daily limit, yesterday
    budgets = Budgets.from_config({"teams": {"claims": {"day": "0.01"}}}, ledger=ledger)
    local, top, verifier = ladder([False, True])
    router = Router(tiers=[local, top], verifiers=[verifier], ledger=ledger, budgets=budgets)
    result = router.route_sync(ChatRequest.from_text("q", team="claims"))
    assert (result.content, result.budget_capped) == ("frontier answer", False)


# --- one budget system in policy files ----------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def test_the_old_gate_budgets_section_is_refused_with_the_way_to_write_it(tmp_path: Path) -> None:
    from paxis_router.config.schema import load_config

    path = tmp_path / "policy.yaml"
    path.write_text(
        "tiers: [{kind: litellm, model: gpt-4o}]\n"
        "gate: {version: v1, budgets: {claims: {limit_usd: '500'}}, rules: []}\n"
    )
    with pytest.raises(ConfigError, match=r"top-level `budgets:` section") as info:
        load_config(path)
    assert info.value.field == "gate.budgets"
    assert str(path) in str(info.value)
    assert 'budgets: {teams: {claims: {month: "500"}}}' in str(info.value)


def test_a_policy_files_budgets_section_gives_the_router_its_budgets(tmp_path: Path) -> None:
    from paxis_router.config.schema import load_config

    path = tmp_path / "policy.yaml"
    path.write_text(
        "tiers: [{kind: litellm, model: gpt-4o}]\n"
        f"ledger: {{path: {tmp_path / 'l.db'}}}\n"
        "budgets: {on_exhausted: refuse, teams: {claims: {day: '5', month: '100'}}}\n"
        "gate: {version: v1, rules: [{id: all, effect: allow}]}\n"
    )
    router = Router.from_config(load_config(path))
    assert router.budgets is not None
    assert router.budgets.budgets == (
        Budget("claims", "day", Decimal("5"), "refuse"),
        Budget("claims", "month", Decimal("100"), "refuse"),
    )
    assert router.budgets.ledger is not None


@pytest.mark.parametrize("policy", sorted((REPO / "policies").glob("*.yaml")), ids=str)
def test_bundled_policies_load_without_a_gate_budget(policy: Path) -> None:
    import yaml

    from paxis_router.config.schema import config_from_mapping
    from paxis_router.governance.gate import load_gate_policy

    raw = yaml.safe_load(policy.read_text())
    if "tiers" in raw:
        config_from_mapping(raw, source=str(policy))
    if "gate" in raw:
        assert "budgets" not in raw["gate"]
        assert load_gate_policy(policy).version
