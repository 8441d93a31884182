"""Newer CallRecord fields (token details, tools, task and step, tags) stored, read back and
reported by (task, tool, tag:<key>, ``where``); long error text capped. SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from paxis_router.errors import ConfigError
from paxis_router.ledger import rollup
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.schema import MAX_TEXT_BYTES, cap_text
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.testing import call_record
from paxis_router.types import CallRecord, Decision, Verdict

Ledger = SQLiteLedger | PostgresLedger
DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
USD = Decimal
APOLLO_ANN = {"project": "apollo", "user": "ann"}
APOLLO_BOB = {"project": "apollo", "user": "bob"}


def agent_records() -> list[CallRecord]:
    """Four routes: two steps of task t-1 (project apollo), one of project zeus, one untagged."""
    t1, t2 = DAY1 + timedelta(hours=9), DAY1 + timedelta(hours=10)
    t3, t4 = DAY2 + timedelta(hours=9), DAY2 + timedelta(hours=10)
    return [
        call_record("T1", 0, ts=t1, task_id="t-1", step=0, tags=APOLLO_ANN,
                    tools=("search", "calculator", "search"), cost_usd=USD("0.001"),
                    counterfactual_usd=USD("0.02"), cached_prompt_tokens=40, reasoning_tokens=0),
        call_record("T2", 0, ts=t2, task_id="t-1", step=1, tags=APOLLO_BOB, tools=("search",),
                    decision=Decision.ESCALATE, final=False, cost_usd=USD("0.002")),
        call_record("T2", 1, ts=t2 + timedelta(seconds=1), task_id="t-1", step=1,
                    tags=APOLLO_BOB, tier="frontier:gpt-4o", tier_index=1, model="gpt-4o",
                    cost_usd=USD("0.03"), counterfactual_usd=USD("0.03"),
                    cached_prompt_tokens=10, reasoning_tokens=64),
        call_record("T3", 0, ts=t3, team="support", tags={"project": "zeus"},
                    cost_usd=USD("0.004"), counterfactual_usd=USD("0.01")),
        call_record("T4", 0, ts=t4, team="support", tools=("calculator",), cost_usd=None,
                    counterfactual_usd=USD("0.005")),
    ]  # fmt: skip


def fill(ledger: Ledger) -> None:
    ledger.record_many(agent_records()[:2])
    for entry in agent_records()[2:]:
        ledger.record(entry)
    ledger.label("T1", correct=True)
    ledger.label("T2", correct=False)


def figures(group: report.GroupStats) -> tuple[int, int, Decimal, int]:
    return group.attempts, group.routes, group.cost_usd, group.unknown_cost_attempts


def test_new_fields_round_trip(ledger: Ledger) -> None:
    fill(ledger)
    assert ledger.rows() == agent_records()
    back = ledger.rows(route_id="T1")[0]
    assert back.tools == ("search", "calculator", "search")  # call order and repeats kept
    assert (back.task_id, back.step, dict(back.tags)) == ("t-1", 0, APOLLO_ANN)
    assert (back.cached_prompt_tokens, back.reasoning_tokens) == (40, 0)
    assert ledger.rows(route_id="T3")[0].reasoning_tokens is None  # unknown stays unknown


# Whole days come from the rollups; since=01:00 reads day 1 from the rows, day 2 from rollups.
@pytest.mark.parametrize("since", [None, DAY1 + timedelta(hours=1)])
def test_report_by_task_tool_and_tag(ledger: Ledger, since: datetime | None) -> None:
    fill(ledger)
    by = ("task", "tool", "tag:project", "tag:user")
    r = report.build(ledger, since=since, by=by, now=DAY2)
    assert (r.attempts, r.routes, r.total_cost_usd) == (5, 4, USD("0.037"))
    assert (r.cached_prompt_tokens, r.reasoning_tokens) == (50, 64)
    task = {g.key: figures(g) for g in r.breakdowns["task"]}
    assert task == {"t-1": (3, 2, USD("0.033"), 0), "(none)": (2, 2, USD("0.004"), 1)}
    # One attempt that called two tools counts in both groups, with its whole cost; a tool
    # called twice by one attempt counts once. So tool groups overlap: they add up to more than
    # the total (0.038 > 0.037 here), by design.
    tool = {g.key: figures(g) for g in r.breakdowns["tool"]}
    assert tool == {
        "search": (2, 1, USD("0.003"), 0),
        "calculator": (2, 2, USD("0.001"), 1),
        "(none)": (2, 2, USD("0.034"), 0),
    }
    project = {g.key: figures(g) for g in r.breakdowns["tag:project"]}
    assert project == {
        "apollo": (3, 2, USD("0.033"), 0),
        "zeus": (1, 1, USD("0.004"), 0),
        "(none)": (1, 1, USD(0), 1),  # attempts without the tag: the total less the tagged
    }
    user = {g.key: (g.attempts, g.cost_usd) for g in r.breakdowns["tag:user"]}
    assert user == {"ann": (1, USD("0.001")), "bob": (2, USD("0.032")), "(none)": (2, USD("0.004"))}
    # Labels land on each route's final attempt: T1 (correct), T2's frontier answer (wrong).
    accuracy = {g.key: (g.labelled_routes, g.accuracy) for g in r.breakdowns["tag:project"]}
    assert accuracy == {"apollo": (2, 0.5), "zeus": (0, None), "(none)": (0, None)}
    by_tool = {g.key: (g.labelled_routes, g.accuracy) for g in r.breakdowns["tool"]}
    assert by_tool == {"search": (1, 1.0), "calculator": (1, 1.0), "(none)": (1, 0.0)}
    assert {g.key: g.routes for g in r.breakdowns["task"]} == {"t-1": 2, "(none)": 2}


@pytest.mark.parametrize("since", [None, DAY1 + timedelta(hours=1)])
def test_report_where_keeps_the_matching_attempts(ledger: Ledger, since: datetime | None) -> None:
    fill(ledger)
    r = report.build(
        ledger, since=since, by=("team", "tier", "day", "tool"), where={"tag:project": "apollo"}
    )
    assert r.where == {"tag:project": "apollo"}
    assert (r.attempts, r.routes, r.escalated_routes, r.total_cost_usd) == (3, 2, 1, USD("0.033"))
    assert (r.labelled_routes, r.accuracy) == (2, 0.5)
    assert {g.key: g.cost_usd for g in r.breakdowns["tier"]} == {
        "frontier:gpt-4o": USD("0.03"),
        "local:qwen": USD("0.003"),
    }
    assert [(s.day, s.tier, s.cost_usd) for s in r.spend_by_day_tier] == [
        ("2026-11-01", "frontier:gpt-4o", USD("0.03")),
        ("2026-11-01", "local:qwen", USD("0.003")),
    ]
    assert [(v.verifier, v.verdicts) for v in r.verifiers] == [("schema", 3)]
    assert r.latency_p50_s == 0.5
    both = report.build(ledger, since=since, where={"tag:project": "apollo", "tag:user": "bob"})
    assert (both.attempts, both.total_cost_usd) == (2, USD("0.032"))
    untagged = report.build(ledger, since=since, where={"tag:project": "(none)"}, by=())
    assert (untagged.attempts, untagged.unknown_cost_attempts) == (1, 1)
    calc = report.build(ledger, since=since, where={"tool": "calculator", "team": "support"})
    assert (calc.attempts, calc.routes) == (1, 1)


def test_report_rejects_unknown_dimensions_and_filters(ledger: Ledger) -> None:
    with pytest.raises(ConfigError, match=r"unknown report dimension\(s\) \['tag:'\]"):
        report.build(ledger, by=("tag:",))
    with pytest.raises(ConfigError, match=r"unknown report dimension\(s\) \['colour'\]"):
        report.build(ledger, where={"colour": "red"})


# --- item: long error and reason text is capped at record time ---------------------------------


def test_a_huge_error_body_is_capped_in_every_text_column(ledger: Ledger) -> None:
    body = "<html>" + "x" * 20_000_000  # a 500 with a 20 MB error page
    ledger.record(
        call_record(
            "E", ts=DAY1, error=body, error_type="WorkerUnavailable", reason=f"stop: {body}",
            decision=Decision.ESCALATE, final=False,
            verdicts=(Verdict("schema", False, None, body),),
        )
    )  # fmt: skip
    (back,) = ledger.rows()
    assert back.error is not None
    for text in (back.error, back.reason, back.verdicts[0].reason):
        assert len(text.encode()) <= MAX_TEXT_BYTES
        assert text.startswith(("<html>xxx", "stop: <html>xxx"))
    assert back.error.endswith(f"xxx… [truncated: {len(body)} bytes in all]")
    assert back.verdicts[0].reason == back.error
    assert back.reason.endswith(f"xxx… [truncated: {len(body) + 6} bytes in all]")
    r = report.build(ledger)
    assert len(r.top_escalation_reasons[0].reason.encode()) <= MAX_TEXT_BYTES  # the rollup key


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("short", "short"),
        ("é" * 2048, "é" * 2048),  # 4096 bytes exactly: kept whole
    ],
)
def test_cap_text_keeps_what_fits(text: str, kept: str) -> None:
    assert cap_text(text) == kept


def test_cap_text_cuts_on_a_character_boundary() -> None:
    capped = cap_text("€" * 2000)  # 6000 bytes; 3 bytes a character
    assert len(capped.encode()) <= MAX_TEXT_BYTES
    head, marker = capped.split("…", 1)
    assert set(head) == {"€"}
    assert marker == " [truncated: 6000 bytes in all]"


def test_rollups_kept_by_the_writer_equal_rollups_rebuilt_from_the_rows(ledger: Ledger) -> None:
    # The Python aggregation (record_many, record) and the SQL one (migrations, bulk loads)
    # must agree row for row, or an upgraded ledger would report other figures.
    fill(ledger)
    tables = ("rollup_dims", "latency_daily", "verdicts_daily", "reasons_daily")
    kept = {t: sorted(ledger.query(f"SELECT * FROM {t}")) for t in tables}
    assert len(kept["rollup_dims"]) > 20
    (top,) = ledger.query("SELECT MAX(id) FROM attempts")[0]
    chunks = ((0, 2), (2, int(top)))  # a bulk load adding its rows in two chunks
    Runs = list[tuple[str, tuple[int, ...]]]
    rebuild: Runs = [(sql, ()) for sql in rollup.rebuild_statements(ledger.dialect)]
    in_chunks: Runs = [(f"DELETE FROM {t}", ()) for t in tables] + [
        (sql, chunk) for chunk in chunks for sql in rollup.add_rows_statements(ledger.dialect)
    ]
    for runs in (rebuild, in_chunks):
        run_sql(ledger, runs)
        assert {t: sorted(ledger.query(f"SELECT * FROM {t}")) for t in tables} == kept


def run_sql(ledger: Ledger, runs: list[tuple[str, tuple[int, ...]]]) -> None:
    """Run statements (``?`` placeholders) in one transaction, beside the ledger."""
    if isinstance(ledger, SQLiteLedger):
        with sqlite3.connect(ledger.path) as conn:
            for sql, params in runs:
                conn.execute(sql, params)
        conn.close()
        return
    import psycopg

    with psycopg.connect(ledger.url) as pg:
        for sql, params in runs:
            pg.execute(sql.replace("?", "%s"), params)
