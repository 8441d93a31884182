"""The cost report's "of which shadow" figures, on SQLite and on a real PostgreSQL: from the
daily rollups and from raw rows alike, in every output format, and backfilled by migration
(every older schema version upgrades to the same report)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.ledger import open_ledger, rollup, sqlite as sqlite_ledger
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.schema import (
    ADDED_COLUMNS,
    SCHEMA_1_COLUMNS,
    insert_sql,
    record_to_row,
)
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.testing import call_record
from paxis_router.types import CallRecord, Decision

Ledger = SQLiteLedger | PostgresLedger
DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
USD = Decimal
SHADOW_LINE = "Of which shadow (calibration sampling): $0.0200 + 1 unpriced (2 calls)"


def rec(route: str, index: int, ts: datetime, **over: object) -> CallRecord:
    fields: dict[str, object] = {"reason": "accept", "data_class": None, "finish_reason": None}
    return call_record(route, index, ts=ts, **{**fields, **over})


def top(route: str, index: int, ts: datetime, **over: object) -> CallRecord:
    return rec(route, index, ts, tier="frontier:gpt-4o", tier_index=1, model="gpt-4o", **over)


def shadow(route: str, ts: datetime, cost: str | None) -> CallRecord:
    return top(
        route,
        1,
        ts,
        decision=Decision.SHADOW,
        reason="shadow: calibration sample (rate 0.05)",
        final=False,
        cost_usd=None if cost is None else USD(cost),
    )


def records() -> list[CallRecord]:
    """Three routes over two days; two shadowed (one shadow call unpriced), one escalated."""
    a0, b0, c0 = DAY1 + timedelta(hours=10), DAY1 + timedelta(hours=13), DAY2 + timedelta(hours=9)
    s = timedelta(seconds=1)
    return [
        rec("A", 0, a0, cost_usd=USD("0.001"), counterfactual_usd=USD("0.02")),
        shadow("A", a0 + s, "0.02"),
        rec("B", 0, b0, cost_usd=USD("0.002"), counterfactual_usd=USD("0.03")),
        shadow("B", b0 + s, None),
        rec("C", 0, c0, team="support", decision=Decision.ESCALATE, final=False,
            cost_usd=USD("0.003")),
        top("C", 1, c0 + s, team="support", cost_usd=USD("0.04"), counterfactual_usd=USD("0.04")),
    ]  # fmt: skip


def shadow_figures(group: report.GroupStats | report.CostReport) -> tuple[Decimal, int, int]:
    return group.shadow_cost_usd, group.shadow_attempts, group.shadow_unknown_cost_attempts


@pytest.mark.parametrize(
    "since",
    [None, DAY1 + timedelta(hours=1)],  # whole days (the rollups); a partial first day (rows)
)
def test_report_counts_shadow_spend_apart(ledger: Ledger, since: datetime | None) -> None:
    ledger.record_many(records())
    r = report.build(ledger, since=since, by=("team", "tier"), now=DAY2)
    assert (r.routes, r.attempts) == (3, 6)
    assert r.total_cost_usd == USD("0.066")  # 0.001 + 0.02 + 0.002 + 0.003 + 0.04: shadow in
    assert r.unknown_cost_attempts == 1  # the unpriced shadow call, counted, not summed
    assert shadow_figures(r) == (USD("0.02"), 2, 1)
    assert r.counterfactual_cost_usd == USD("0.09")  # shadow rows are never the answer
    team = {g.key: shadow_figures(g) for g in r.breakdowns["team"]}
    assert team == {"claims": (USD("0.02"), 2, 1), "support": (USD(0), 0, 0)}
    tier = {g.key: g for g in r.breakdowns["tier"]}
    assert shadow_figures(tier["frontier:gpt-4o"]) == (USD("0.02"), 2, 1)
    assert tier["frontier:gpt-4o"].cost_usd == USD("0.06")
    assert shadow_figures(tier["local:qwen"]) == (USD(0), 0, 0)
    assert shadow_figures(r.totals) == shadow_figures(r)


def test_csv_and_json_carry_the_shadow_fields_exactly(ledger: Ledger) -> None:
    ledger.record_many(records())
    r = report.build(ledger, by=("team",), now=DAY2)
    rows = {(x["dimension"], x["key"]): x for x in csv.DictReader(io.StringIO(r.to_csv()))}
    picked = ("shadow_cost_usd", "shadow_attempts", "shadow_unknown_cost_attempts")
    assert [rows["all", "all"][k] for k in picked] == ["0.02", "2", "1"]
    assert [rows["team", "claims"][k] for k in picked] == ["0.02", "2", "1"]
    assert [rows["team", "support"][k] for k in picked] == ["0", "0", "0"]
    data = json.loads(r.to_json())
    assert [data[k] for k in picked] == ["0.02", 2, 1]  # money as a decimal string
    assert data["breakdowns"]["team"][0]["shadow_cost_usd"] == "0.02"


def test_text_formats_show_the_shadow_line_only_when_there_is_one(tmp_path: Path) -> None:
    from rich.console import Console

    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record_many(records())
    r = report.build(ledger, by=("tier",), now=DAY2)
    text = r.to_markdown()
    assert f"- {SHADOW_LINE}" in text
    assert "| tier | routes | attempts | spend $ | of which shadow $ (calls) |" in text
    assert (
        "| frontier:gpt-4o | 1 | 3 | $0.0600 + 1 unpriced | $0.0200 + 1 unpriced (2 calls) |"
        in (text)
    )
    console = Console(file=io.StringIO(), width=250, color_system=None)
    for table in r.to_rich():
        console.print(table)
    printed = console.file.getvalue()  # type: ignore[attr-defined]  # the StringIO passed in
    assert SHADOW_LINE in printed
    assert "(0 calls)" in printed  # local:qwen's row
    html = r.to_html()
    assert (
        'Of which shadow (calibration sampling)<span class="value">$0.0200 + 1 unpriced</span>'
        '<span class="sub">2 calls</span>'
    ) in html
    plain = SQLiteLedger(tmp_path / "plain.db")
    plain.record_many([c for c in records() if c.decision is not Decision.SHADOW])
    without = report.build(plain, by=("tier",), now=DAY2)
    assert without.shadow_attempts == 0
    assert "shadow" not in without.to_markdown() + without.to_html()


def make_old_ledger(ledger: Ledger, version: int, rows: list[CallRecord]) -> str:
    """Turn ``ledger`` (closed here, holding ``rows``) into one a release at schema ``version``
    wrote. Returns its location."""
    ledger.close()
    old_rows = [record_to_row(r)[: len(SCHEMA_1_COLUMNS)] for r in rows]
    if isinstance(ledger, SQLiteLedger):  # built forward: its migration 2 backfilled rollups
        ledger.path.unlink()
        with sqlite3.connect(ledger.path) as conn:
            conn.executescript(sqlite_ledger.MIGRATIONS[0])
            conn.executemany(insert_sql(columns=SCHEMA_1_COLUMNS), old_rows)
            for migration in sqlite_ledger.MIGRATIONS[1:version]:
                conn.executescript(migration)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
        return str(ledger.path)
    import psycopg

    # PostgreSQL ledgers kept every rollup but rollup_daily from their first version on: undo
    # what the later migrations added, keeping the rows and those rollups as they were written.
    with psycopg.connect(ledger.url, autocommit=True) as pg, pg.transaction():
        pg.execute("DROP TABLE rollup_dims")
        for name, _, _ in ADDED_COLUMNS:
            pg.execute(f"ALTER TABLE attempts DROP COLUMN {name}")
        pg.execute(rollup.schema("BIGINT", "DOUBLE PRECISION")[0])  # rollup_daily, emptied
        if version >= 3:
            for column in rollup.SHADOW_COUNTS:
                pg.execute(f"ALTER TABLE rollup_daily ADD COLUMN {column} BIGINT DEFAULT 0")
        if version < 2:
            pg.execute("DROP TABLE attempt_labels")
        pg.execute("UPDATE paxis_schema SET version = %s", (version,))
    return ledger.url


@pytest.mark.parametrize("back", [1, 2, 3])
def test_an_older_ledger_upgrades_with_every_figure(ledger: Ledger, back: int) -> None:
    ledger.record_many(records())
    expected = report.build(ledger, by=("team", "tier", "day", "tool", "task"), now=DAY2)
    current = ledger.schema_version
    old_version = current - back
    location = make_old_ledger(ledger, old_version, records())
    reopened = open_ledger(location)
    try:
        assert reopened.schema_version == current
        assert report.build(reopened, by=("team", "tier", "day", "tool", "task"), now=DAY2) == (
            expected
        )
        assert shadow_figures(expected) == (USD("0.02"), 2, 1)
        assert reopened.rows() == records()  # new columns read back as empty
    finally:
        reopened.close()
