"""The ledger contract, and the cost report's figures, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.errors import ConfigError, LedgerError
from paxis_router.ledger import open_ledger
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.schema import SCHEMA_1_COLUMNS, insert_sql, record_to_row
from paxis_router.ledger.sqlite import MIGRATIONS, SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.testing import call_record
from paxis_router.types import CallRecord, Decision, Verdict

Ledger = SQLiteLedger | PostgresLedger
DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
USD = Decimal


def rec(route: str, index: int, ts: datetime, **over: object) -> CallRecord:
    return call_record(route, index, ts=ts, **over)


def escalated(route: str, index: int, ts: datetime, **over: object) -> CallRecord:
    return rec(
        route,
        index,
        ts,
        decision=Decision.ESCALATE,
        reason="escalate: schema failed (missing total)",
        final=False,
        verdicts=(Verdict("schema", False, None, "missing total"),),
        passed=False,
        **over,
    )


def frontier(route: str, ts: datetime, **over: object) -> CallRecord:
    return rec(route, 1, ts, tier="frontier:gpt-4o", tier_index=1, model="gpt-4o", **over)


def fixed_records() -> list[CallRecord]:
    """Four routes over two days. Hand-computed figures are in the tests below."""
    a0, b0 = DAY1 + timedelta(hours=10), DAY1 + timedelta(hours=13)
    c0, d0 = DAY2 + timedelta(hours=9), DAY2 + timedelta(hours=15)
    one_s = timedelta(seconds=1)
    return [
        escalated("A", 0, a0, cost_usd=USD("0.001"), latency_s=0.5),
        frontier("A", a0 + one_s, cost_usd=USD("0.02"), counterfactual_usd=USD("0.02"),
                 latency_s=2.0),
        rec("B", 0, b0, skill="invoice,summarise", cost_usd=USD("0.002"),
            counterfactual_usd=USD("0.03"), latency_s=0.25),
        rec("C", 0, c0, team="support", skill="sql", cost_usd=None,
            counterfactual_usd=USD("0.01"), latency_s=1.0),
        escalated("D", 0, d0, team="support", skill="sql", cost_usd=USD("0.003"),
                  latency_s=0.75),
        frontier("D", d0 + one_s, team="support", skill="sql", cost_usd=USD("0.04"),
                 counterfactual_usd=USD("0.04"), latency_s=3.0, budget_capped=True),
    ]  # fmt: skip


def fill(ledger: Ledger) -> None:
    records = fixed_records()
    ledger.record_many(records[:3])
    for entry in records[3:]:
        ledger.record(entry)
    ledger.label("A", correct=True, score=1.0, source="audit")
    ledger.label("B", correct=False, score=0.5, source="audit")
    ledger.label("D", correct=True, source="audit")


# --- the contract --------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(ledger: Ledger) -> None:
    original = fixed_records()[1]
    ledger.record(original)
    (back,) = ledger.rows()
    assert back == original
    assert back.cost_usd == USD("0.02")
    assert back.verdicts == (Verdict("schema", True, None, ""),)
    assert ledger.count() == 1


def test_unknown_money_stays_unknown(ledger: Ledger) -> None:
    ledger.record(rec("X", 0, DAY1, cost_usd=None, counterfactual_usd=None))
    (back,) = ledger.rows()
    assert back.cost_usd is None
    assert back.counterfactual_usd is None


def test_record_many_is_all_or_none(ledger: Ledger) -> None:
    ledger.record(rec("A", 0, DAY1))
    with pytest.raises(LedgerError, match="cannot write to ledger"):
        ledger.record_many([rec("B", 0, DAY1), rec("A", 0, DAY1)])  # A/0 already exists
    assert [r.route_id for r in ledger.rows()] == ["A"]
    assert report.build(ledger).attempts == 1  # the rollups rolled back too


def test_rows_filter_by_window_and_route(ledger: Ledger) -> None:
    fill(ledger)
    assert [(r.route_id, r.attempt_index) for r in ledger.rows(since=DAY2)] == [
        ("C", 0), ("D", 0), ("D", 1),
    ]  # fmt: skip
    assert len(ledger.rows(until=DAY2)) == 3
    assert [r.attempt_index for r in ledger.rows(route_id="A")] == [0, 1]


def test_label_replaces_an_earlier_label(ledger: Ledger) -> None:
    ledger.record(rec("A", 0, DAY1))
    ledger.label("A", correct=False, source="first")
    ledger.label("A", correct=True, score=0.9, source="second")
    assert ledger.query("SELECT correct, score, source FROM labels") == [(1, 0.9, "second")]
    with pytest.raises(LedgerError, match="needs correct= or score="):
        ledger.label("A")


def test_schema_is_current(ledger: Ledger) -> None:
    expected = 6 if isinstance(ledger, SQLiteLedger) else 4
    assert ledger.schema_version == expected


# --- the report on both databases, against hand-computed figures ---------------------------------


def test_report_totals_match_hand_computed_figures(ledger: Ledger) -> None:
    fill(ledger)
    r = report.build(ledger, now=DAY2)
    assert (r.routes, r.attempts, r.escalated_routes) == (4, 6, 2)
    assert r.escalation_rate == 0.5
    # 0.001 + 0.02 + 0.002 + 0.003 + 0.04; route C's attempt has no price: counted, not summed.
    assert r.total_cost_usd == USD("0.066")
    assert r.unknown_cost_attempts == 1
    assert r.prices_complete is False
    assert r.counterfactual_cost_usd == USD("0.10")  # 0.02 + 0.03 + 0.01 + 0.04
    assert r.savings_usd == USD("0.034")
    assert r.savings_ratio == pytest.approx(0.10 / 0.066)
    assert (r.accepted_routes, r.budget_capped_routes) == (4, 1)
    assert (r.prompt_tokens, r.completion_tokens) == (600, 120)
    # latencies 0.25 0.5 0.75 1.0 2.0 3.0: nearest rank 3 and 6
    assert (r.latency_p50_s, r.latency_p95_s) == (0.75, 3.0)
    assert (r.labelled_routes, r.correct_routes) == (3, 2)
    assert r.accuracy == pytest.approx(2 / 3)
    assert r.mean_score == pytest.approx(0.75)
    assert [(v.verifier, v.verdicts, v.passed) for v in r.verifiers] == [("schema", 6, 4)]
    assert [(x.reason, x.count) for x in r.top_escalation_reasons] == [
        ("escalate: schema failed (missing total)", 2)
    ]


def test_report_breakdowns_match_hand_computed_figures(ledger: Ledger) -> None:
    fill(ledger)
    r = report.build(ledger, by=("team", "tier", "day"))
    team = {g.key: g for g in r.breakdowns["team"]}
    assert (team["claims"].attempts, team["claims"].routes, team["claims"].cost_usd) == (
        3, 2, USD("0.023"),
    )  # fmt: skip
    assert team["claims"].counterfactual_cost_usd == USD("0.05")
    assert team["claims"].accuracy == 0.5
    assert (team["support"].cost_usd, team["support"].unknown_cost_attempts) == (USD("0.043"), 1)
    assert team["support"].budget_capped_routes == 1
    tier = {g.key: g for g in r.breakdowns["tier"]}
    assert (tier["local:qwen"].attempts, tier["local:qwen"].routes) == (4, 2)
    assert tier["local:qwen"].cost_usd == USD("0.006")
    assert (tier["frontier:gpt-4o"].escalation_rate, tier["frontier:gpt-4o"].cost_usd) == (
        1.0, USD("0.06"),
    )  # fmt: skip
    assert tier["frontier:gpt-4o"].latency_p50_s == 2.0
    day = {g.key: g.cost_usd for g in r.breakdowns["day"]}
    assert day == {"2026-11-01": USD("0.023"), "2026-11-02": USD("0.043")}
    spend = {(s.day, s.tier): s.cost_usd for s in r.spend_by_day_tier}
    assert spend[("2026-11-02", "frontier:gpt-4o")] == USD("0.04")


def test_report_keys_skills_on_the_top_skill(ledger: Ledger) -> None:
    fill(ledger)
    whole = report.build(ledger, by=("skill",))  # from the rollups
    assert {g.key: g.routes for g in whole.breakdowns["skill"]} == {"invoice": 2, "sql": 2}
    assert whole.breakdowns["skill"][0].accuracy == 0.5
    partial = report.build(ledger, since=DAY1 + timedelta(hours=12), by=("skill",))  # raw rows
    invoice, sql = partial.breakdowns["skill"]
    assert (invoice.key, invoice.routes, invoice.cost_usd, invoice.accuracy) == (
        "invoice", 1, USD("0.002"), 0.0,
    )  # fmt: skip
    assert (sql.key, sql.routes, sql.labelled_routes) == ("sql", 2, 1)


@pytest.mark.parametrize(
    ("since", "until", "attempts", "cost"),
    [
        (DAY2, None, 3, "0.043"),  # whole days: from the rollups
        (DAY1 + timedelta(hours=12), None, 4, "0.045"),  # B + day 2: a partial first day
        (None, DAY1 + timedelta(hours=12), 2, "0.021"),  # route A only: a partial last day
        (DAY1 + timedelta(hours=12), DAY2 + timedelta(hours=12), 2, "0.002"),  # B and C
        (DAY2 + timedelta(hours=14), DAY2 + timedelta(hours=16), 2, "0.043"),  # within one day
    ],
)
def test_report_window_mixes_rollups_and_rows(
    ledger: Ledger, since: datetime | None, until: datetime | None, attempts: int, cost: str
) -> None:
    fill(ledger)
    r = report.build(ledger, since=since, until=until, by=("day",))
    assert (r.attempts, r.total_cost_usd) == (attempts, USD(cost))
    assert sum(g.attempts for g in r.breakdowns["day"]) == attempts
    assert sum(v.verdicts for v in r.verifiers) == attempts


def test_report_of_an_empty_ledger(ledger: Ledger) -> None:
    r = report.build(ledger)
    assert (r.routes, r.attempts, r.total_cost_usd, r.savings_ratio) == (0, 0, USD(0), None)
    assert r.breakdowns["team"] == []
    assert r.prices_complete is True


def test_report_rejects_bad_arguments(ledger: Ledger) -> None:
    with pytest.raises(ConfigError, match="unknown report dimension"):
        report.build(ledger, by=("colour",))
    with pytest.raises(ConfigError, match="window is empty"):
        report.build(ledger, since=DAY2, until=DAY1)
    with pytest.raises(ConfigError, match="naive"):
        report.build(ledger, since=datetime(2026, 11, 1))


# --- SQLite specifics ----------------------------------------------------------------------------


def test_migration_backfills_rollups_of_an_old_ledger(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(MIGRATIONS[0])
    old_rows = [record_to_row(r)[: len(SCHEMA_1_COLUMNS)] for r in fixed_records()]
    conn.executemany(insert_sql(columns=SCHEMA_1_COLUMNS), old_rows)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    migrated = SQLiteLedger(old)
    fresh = SQLiteLedger(tmp_path / "fresh.db")
    fresh.record_many(fixed_records())
    now = DAY2
    assert report.build(migrated, now=now) == report.build(fresh, now=now)


def test_open_ledger_chooses_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_ledger(f"sqlite:///{tmp_path / 'a.db'}"), SQLiteLedger)
    assert isinstance(open_ledger(str(tmp_path / "b.db")), SQLiteLedger)
    with pytest.raises(LedgerError, match="unsupported ledger URL"):
        open_ledger("mysql://host/db")


def test_postgres_error_names_the_server_without_the_password() -> None:
    with pytest.raises(
        LedgerError, match=r"cannot open ledger postgresql://u:\*\*\*@127\.0\.0\.1:1/"
    ):
        PostgresLedger("postgresql://u:secret@127.0.0.1:1/db", connect_timeout_s=1)


def test_concurrent_writers_keep_rows_and_rollups_consistent(ledger: Ledger) -> None:
    location = ledger.path if isinstance(ledger, SQLiteLedger) else ledger.url
    teams = ["a", "b", "c", "d"]

    def write(worker: int) -> None:
        other = open_ledger(location)
        try:
            for batch in range(10):
                order = teams if worker % 2 else teams[::-1]  # opposite key orders
                other.record_many(
                    [rec(f"w{worker}-{batch}-{team}", 0, DAY1, team=team, cost_usd=USD("0.001"))
                     for team in order]
                )  # fmt: skip
        finally:
            other.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    r = report.build(ledger, by=("team",))
    assert ledger.count() == r.attempts == 160
    assert r.total_cost_usd == USD("0.16")
    assert [(g.key, g.attempts) for g in r.breakdowns["team"]] == [(t, 40) for t in teams]
