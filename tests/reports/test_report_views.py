"""The views around the cost report on a real SQLite ledger: pivots and cross-tabs (local
midnight days), budget against actual, the amortised fleet, line items, the spreadsheet, and
``paxis report`` with --tz, --policy, --format xlsx and line-items."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.errors import ConfigError
from paxis_router.governance.budgets import Budget
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports import cost_report
from paxis_router.reports.budget_view import budget_statuses
from paxis_router.reports.dashboard import build_dashboard
from paxis_router.reports.fleet import Fleet
from paxis_router.reports.line_items import COLUMNS, line_items_csv
from paxis_router.reports.pivot import pivot
from paxis_router.reports.settings import ReportSettings
from paxis_router.types import CallRecord, Decision

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def attempt(
    n: int, ts: datetime, team: str, skill: str, cost: str | None, **extra: object
) -> CallRecord:
    return CallRecord(
        route_id=f"r{n}",
        request_id=f"q{n}",
        attempt_index=0,
        ts=ts,
        tier="local:qwen",
        tier_index=0,
        model="qwen",
        decision=Decision.ACCEPT,
        reason="accept",
        final=True,
        team=team,
        skill=skill,
        prompt_tokens=1000,
        completion_tokens=200,
        cost_usd=None if cost is None else Decimal(cost),
        counterfactual_usd=Decimal("0.01"),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    """Claims and research over October's end and November's start; one row at 23:30 UTC on
    Oct 31 (00:30 on Nov 1 in Paris), one with an unknown price."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record_many(
        [
            attempt(1, NOV - timedelta(hours=12), "claims", "sql", "0.002",
                    tags={"project": "apollo", "user": "ann"}),
            attempt(2, NOV - timedelta(minutes=30), "claims", "invoice", "0.003",
                    tags={"project": "apollo"}),
            attempt(3, NOV + timedelta(hours=10), "research", "sql", "0.004"),
            attempt(4, NOV + timedelta(days=1, hours=10), "claims", "sql", "0.001",
                    tools=("search", "search", "calc")),
            attempt(5, NOV + timedelta(days=1, hours=11), "research", "math", None),
        ]
    )  # fmt: skip
    return ledger


def cells(tab: object) -> dict[tuple[str, str], Decimal]:
    from paxis_router.reports.pivot import Pivot

    assert isinstance(tab, Pivot)
    return {(c.row, c.col): c.stats.cost_usd for c in tab.cells}


def test_team_by_month_and_team_by_skill(ledger: SQLiteLedger) -> None:
    by_month = pivot(ledger, "team", "month")
    assert by_month.cols == ["2026-10", "2026-11"]
    assert cells(by_month) == {
        ("claims", "2026-10"): Decimal("0.005"),
        ("claims", "2026-11"): Decimal("0.001"),
        ("research", "2026-11"): Decimal("0.004"),  # the unknown price adds nothing, not $0
    }
    assert by_month.rows == ["claims", "research"]  # by spend, largest first
    assert by_month.row_totals()["research"].unknown_cost_attempts == 1
    by_skill = pivot(ledger, "team", "skill")
    assert cells(by_skill)[("claims", "sql")] == Decimal("0.003")
    assert by_skill.col_totals()["sql"].cost_usd == Decimal("0.007")


def test_days_are_cut_at_local_midnight(ledger: SQLiteLedger) -> None:
    utc = pivot(ledger, "team", "day")
    paris = pivot(ledger, "team", "day", tz="Europe/Paris")
    assert cells(utc)[("claims", "2026-10-31")] == Decimal("0.005")
    assert cells(paris)[("claims", "2026-10-31")] == Decimal("0.002")
    assert cells(paris)[("claims", "2026-11-01")] == Decimal("0.003")  # 23:30Z is 00:30 there
    built = cost_report.build(ledger, by=("day",), tz="Europe/Paris")
    assert built.tz == "Europe/Paris"
    assert [(g.key, g.cost_usd) for g in built.breakdowns["day"]][:2] == [
        ("2026-10-31", Decimal("0.002")),
        ("2026-11-01", Decimal("0.007")),
    ]


def test_the_rollup_path_and_the_row_path_agree(ledger: SQLiteLedger) -> None:
    since = NOV - timedelta(hours=6)  # a partial first day: rows, then whole days: rollups
    fast = pivot(ledger, "tag:project", "day", since=since)
    # a filter that keeps every row sends the pivot to the attempt rows
    slow = pivot(ledger, "tag:project", "day", since=since, where={"model": "qwen"})
    assert (
        cells(fast)
        == cells(slow)
        == {
            ("apollo", "2026-10-31"): Decimal("0.003"),
            ("(none)", "2026-11-01"): Decimal("0.004"),
            ("(none)", "2026-11-02"): Decimal("0.001"),
        }
    )


@pytest.mark.parametrize(
    ("rows", "cols", "message"),
    [
        ("month", "team", "put time on the columns"),
        ("team", "team", "by itself"),
        ("tool", "tool", "by itself"),
        ("colour", "day", "expected team"),
    ],
)
def test_bad_pivots_say_why(ledger: SQLiteLedger, rows: str, cols: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pivot(ledger, rows, cols)


def test_an_unknown_zone_is_refused_with_an_example(ledger: SQLiteLedger) -> None:
    with pytest.raises(ConfigError, match="Europe/Paris"):
        pivot(ledger, "team", "day", tz="Mars/Olympus")


def test_budget_burn_down_forecast_and_thresholds(ledger: SQLiteLedger) -> None:
    budget = Budget("claims", "month", Decimal("0.004"), alerts=(Decimal("0.2"), Decimal(1)))
    (status,) = budget_statuses(ledger, [budget], as_of=NOV + timedelta(days=3))
    assert (status.spent_usd, status.remaining_usd) == (Decimal("0.001"), Decimal("0.003"))
    assert status.burn == [("2026-11-01", Decimal(0)), ("2026-11-02", Decimal("0.001")),
                           ("2026-11-03", Decimal("0.001"))]  # fmt: skip
    assert status.forecast_usd == Decimal("0.01")  # $0.001 in 3 days of a 30-day month
    assert [(t.threshold, t.reached_on) for t in status.thresholds] == [
        (Decimal("0.2"), "2026-11-02"),
        (Decimal(1), None),
    ]


def test_the_amortised_view_spreads_the_fleet_over_its_calls(ledger: SQLiteLedger) -> None:
    fleet = Fleet("local:qwen", gpus=2, usd_per_gpu_hour=Decimal("0.5"))
    board = build_dashboard(
        ledger,
        since=NOV,
        until=NOV + timedelta(days=2),
        settings=ReportSettings(fleets=(fleet,)),
        now=NOV + timedelta(days=10),
    )
    view = board.amortised
    assert view is not None
    (stats,) = view.fleets
    assert stats.reserved_gpu_hours == 96.0  # 2 GPUs x 48 hours
    assert stats.amortised_cost_usd == Decimal(48)  # 96 GPU-hours x $0.50
    assert stats.marginal_cost_usd == Decimal("0.005")
    assert stats.idle_cost_usd == Decimal("47.995")
    assert stats.attempts == 3 and stats.amortised_usd_per_attempt == Decimal(16)
    assert stats.utilisation == pytest.approx(0.005 / 0.5 / 96)
    assert view.amortised_savings_usd == view.counterfactual_cost_usd - Decimal(48)
    assert view.amortised_savings_usd < 0  # an idle fleet costs more than frontier-only


def test_line_items_one_row_per_attempt(ledger: SQLiteLedger) -> None:
    rows = list(csv.DictReader(io.StringIO(line_items_csv(ledger, tz="Europe/Paris"))))
    assert list(rows[0]) == [*COLUMNS, "tag:project", "tag:user"]
    assert [r["route_id"] for r in rows] == ["r1", "r2", "r3", "r4", "r5"]
    assert (rows[1]["ts"], rows[1]["local_date"]) == ("2026-10-31T23:30:00.000000Z", "2026-11-01")
    assert (rows[0]["cost_usd"], rows[0]["tag:project"], rows[0]["tag:user"]) == (
        "0.002", "apollo", "ann")  # fmt: skip
    assert rows[4]["cost_usd"] == ""  # an unknown price is unknown, never 0
    assert rows[3]["tools"] == "search;search;calc"
    assert rows[2]["counterfactual_usd"] == "0.01" and rows[2]["final"] == "1"
    apollo = line_items_csv(ledger, where={"tag:project": "apollo"}, since=NOV - timedelta(hours=1))
    assert [r["route_id"] for r in csv.DictReader(io.StringIO(apollo))] == ["r2"]
    with pytest.raises(ConfigError, match="unknown filter dimension"):
        line_items_csv(ledger, where={"colour": "red"})


def test_the_spreadsheet_has_a_sheet_per_view_with_exact_money(ledger: SQLiteLedger) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    from paxis_router.reports.xlsx import dashboard_xlsx

    board = build_dashboard(ledger, by=("team", "tag:project"))
    book = openpyxl.load_workbook(io.BytesIO(dashboard_xlsx(board)))
    assert book.sheetnames == ["Summary", "By team", "By tag project", "By skill", "By tier",
                               "By model", "By day", "team x skill", "team x month"]  # fmt: skip
    team = book["By team"]
    assert [c.value for c in team[1]][:4] == ["team", "routes", "attempts", "spend_usd"]
    assert team["A2"].value == "claims" and Decimal(str(team["D2"].value)) == Decimal("0.006")
    assert team["D2"].number_format == "$#,##0.0000"
    month = book["team x month"]
    assert [c.value for c in month[1]] == ["team \\ month", "2026-10", "2026-11", "total"]


@pytest.fixture
def ledger_file(ledger: SQLiteLedger, tmp_path: Path) -> Path:
    ledger.close()
    return tmp_path / "l.db"


def test_cli_tz_reads_dates_as_local_days(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "--ledger", str(ledger_file), "--format", "line-items"]
    assert main([*args, "--since", "2026-11-01", "--until", "2026-11-01"]) == 0
    utc = [r["route_id"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))]
    assert main([*args, "--since", "2026-11-01", "--until", "2026-11-01", "--tz",
                 "Europe/Paris"]) == 0  # fmt: skip
    paris = [r["route_id"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))]
    assert (utc, paris) == (["r3"], ["r2", "r3"])


def test_cli_xlsx_needs_an_output_file_and_html_reads_the_policy(
    ledger_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "--ledger", str(ledger_file)]
    assert main([*args, "--format", "xlsx"]) == 2
    assert "give -o FILE" in capsys.readouterr().err
    out = tmp_path / "r.xlsx"
    assert main([*args, "--format", "xlsx", "-o", str(out)]) == 0
    assert out.read_bytes()[:2] == b"PK"  # a zip: the xlsx container
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers: [{kind: local, name: 'local:qwen', model: q, base_url: 'http://127.0.0.1:8000/v1',\n"
        "         usd_per_gpu_hour: '0.5', gpus: 2}]\n"
        "budgets: {teams: {claims: {month: '0.004'}}}\n"
        "reports: {fleet: {'local:qwen': {}}}\n",
        encoding="utf-8",
    )
    page = tmp_path / "r.html"
    assert main([*args, "--format", "html", "--policy", str(policy), "--until", "2026-11-02",
                 "--crosstab", "team:tag:project", "-o", str(page)]) == 0  # fmt: skip
    html = page.read_text(encoding="utf-8")
    assert '<table id="budgets">' in html and '<table id="fleet">' in html
    assert '<table id="crosstab-team-tag-project">' in html
    bad = tmp_path / "bad.yaml"
    bad.write_text(policy.read_text().replace("'local:qwen': {}}", "'local:qwen': {gpus: 0}}"))
    assert main([*args, "--format", "html", "--policy", str(bad)]) == 2
    assert "reports.fleet.local:qwen" in capsys.readouterr().err
