"""``paxis report`` and ``paxis label`` end to end on a real SQLite ledger; readers open it
read-only."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.types import CallRecord, Decision

DAY1 = datetime(2026, 11, 1, 10, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def route(route_id: str, ts: datetime, cost: str, request_id: str | None = None) -> CallRecord:
    return CallRecord(
        route_id=route_id,
        request_id=request_id or f"req-{route_id}",
        attempt_index=0,
        ts=ts,
        tier="local:qwen",
        tier_index=0,
        model="qwen",
        decision=Decision.ACCEPT,
        reason="accept",
        final=True,
        team="claims",
        skill="invoice",
        cost_usd=Decimal(cost),
        counterfactual_usd=Decimal("0.01"),
    )


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path)
    ledger.record_many(
        [
            route("a", DAY1, "0.001"),
            route("b", DAY1 + timedelta(days=1), "0.002", request_id="mine-7"),
            route("c", DAY1 + timedelta(days=2), "0.004"),
        ]
    )
    ledger.close()
    return path


def test_report_json_with_a_window(ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["report", "--ledger", str(ledger_path), "--since", "2026-11-02",
                   "--until", "2026-11-02", "--by", "team", "--format", "json"])  # fmt: skip
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["routes"], data["total_cost_usd"]) == (1, "0.002")  # --until's day included
    assert list(data["breakdowns"]) == ["team"]


def test_report_table_csv_and_markdown(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--ledger", str(ledger_path)]) == 0
    table = capsys.readouterr().out
    assert "Cost report" in table and "By skill" in table and "invoice" in table
    assert main(["report", "--ledger", str(ledger_path), "--format", "csv", "--by", "day"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["key"], r["cost_usd"]) for r in rows] == [
        ("all", "0.007"), ("2026-11-01", "0.001"), ("2026-11-02", "0.002"),
        ("2026-11-03", "0.004"),
    ]  # fmt: skip
    assert main(["report", "--ledger", str(ledger_path), "--format", "markdown"]) == 0
    assert "- Spend: $0.0070" in capsys.readouterr().out


def test_report_html_to_a_file(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    args = ["report", "--ledger", str(ledger_path), "--by", "team", "--format", "html"]
    assert main([*args, "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote html report to {out}\n"
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert 'id="chart-escalation-by-skill"' in html
    assert "Spend and savings by skill" in html  # --format html adds the breakdowns it needs


def test_report_errors_name_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--ledger", str(tmp_path / "none.db")]) == 2
    assert "no ledger at" in capsys.readouterr().err
    SQLiteLedger(tmp_path / "l.db").close()
    assert main(["report", "--ledger", str(tmp_path / "l.db"), "--by", "colour"]) == 2
    assert "unknown report dimension" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(["report", "--ledger", str(tmp_path / "l.db"), "--since", "yesterday"])
    assert "not a date or ISO datetime: 'yesterday'" in capsys.readouterr().err


def test_label_joins_ground_truth_by_route_or_request_id(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "truth.csv"
    labels.write_text("route_id,correct,score\na,true,0.9\nc,no,\n", encoding="utf-8")
    assert main(["label", str(labels), "--ledger", str(ledger_path)]) == 0
    assert capsys.readouterr().out == f"labelled 2 route(s) from {labels}\n"
    by_request = tmp_path / "mine.csv"
    by_request.write_text("request_id,correct,source\nmine-7,1,qa-team\n", encoding="utf-8")
    assert main(["label", str(by_request), "--ledger", str(ledger_path)]) == 0
    capsys.readouterr()
    ledger = SQLiteLedger(ledger_path)
    assert ledger.query("SELECT route_id, correct, score, source FROM labels ORDER BY 1") == [
        ("a", 1, 0.9, "truth.csv"), ("b", 1, None, "qa-team"), ("c", 0, None, "truth.csv"),
    ]  # fmt: skip
    assert main(["report", "--ledger", str(ledger_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["labelled_routes"], data["correct_routes"]) == (3, 2)


def test_label_reports_unknown_ids_and_bad_rows(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = tmp_path / "u.csv"
    unknown.write_text("route_id,correct\na,true\nzzz,false\n", encoding="utf-8")
    assert main(["label", str(unknown), "--ledger", str(ledger_path)]) == 1
    out = capsys.readouterr().out
    assert "labelled 1 route(s)" in out and "1 id(s) match no route in the ledger: zzz" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("route_id,correct\na,maybe\n", encoding="utf-8")
    assert main(["label", str(bad), "--ledger", str(ledger_path)]) == 2
    assert f"{bad}: line 2: correct must be true or false" in capsys.readouterr().err
    no_id = tmp_path / "noid.csv"
    no_id.write_text("id,correct\na,true\n", encoding="utf-8")
    assert main(["label", str(no_id), "--ledger", str(ledger_path)]) == 2
    assert "needs a route_id or request_id column" in capsys.readouterr().err


# --- readers open the ledger read-only ------------------------------------------------------------


def _run_on_read_only_folder(folder: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``paxis argv`` with ``folder`` read-only for the process: a read-only bind mount
    (bubblewrap) where available, which even root cannot write; else file permissions."""
    command = [sys.executable, "-m", "paxis_router", *argv]
    bwrap = shutil.which("bwrap")
    if bwrap is not None:
        command = [bwrap, "--bind", "/", "/", "--ro-bind", str(folder), str(folder),
                   "--dev", "/dev", "--proc", "/proc", "--chdir", str(ROOT), *command]  # fmt: skip
    elif os.geteuid() == 0:
        pytest.skip("root ignores file permissions and bubblewrap is not installed")
    else:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)


def test_report_reads_a_read_only_ledger(ledger_path: Path) -> None:
    ledger_path.chmod(0o444)
    done = _run_on_read_only_folder(
        ledger_path.parent, ["report", "--ledger", str(ledger_path), "--format", "json"]
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["routes"], data["total_cost_usd"]) == (3, "0.007")


@pytest.fixture
def unrelated_db(tmp_path: Path) -> Path:
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--ledger", "{db}"],
        ["report", "--ledger", "{db}", "--by", "tool", "--where", "tag:project=x"],
        ["distill", "export", "--ledger", "{db}", "--kind", "sft", "-o", "{out}"],
        ["calibrate", "--ledger", "{db}", "--weak", "w", "--strong", "s", "-o", "{out}/p.yaml"],
    ],
)
def test_readers_refuse_a_file_that_is_not_a_ledger_and_leave_it_alone(
    unrelated_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = unrelated_db.read_bytes()
    args = [a.format(db=unrelated_db, out=tmp_path / "out") for a in argv]
    assert main(args) == 2
    assert f"{unrelated_db} is not a paxis ledger" in capsys.readouterr().err
    assert unrelated_db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.db"]  # no -wal, -shm or output


def test_report_by_task_tool_and_tag_with_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agents.db"
    with SQLiteLedger(path) as ledger:
        ledger.record_many(
            [
                replace(route("a", DAY1, "0.001"), task_id="t1", tools=("search", "sql"),
                        tags={"project": "apollo"}),
                replace(route("b", DAY1, "0.002"), task_id="t1", tags={"project": "zeus"}),
                replace(route("c", DAY1, "0.004"), tools=("sql",), tags={"project": "apollo"}),
            ]
        )  # fmt: skip
    argv = ["report", "--ledger", str(path), "--format", "json", "--by", "task,tool,tag:project"]
    assert main([*argv, "--where", "tag:project=apollo"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["attempts"], data["total_cost_usd"], data["where"]) == (
        2, "0.005", {"tag:project": "apollo"},
    )  # fmt: skip
    keys = {
        dim: {g["key"]: g["cost_usd"] for g in rows} for dim, rows in data["breakdowns"].items()
    }
    assert keys == {
        "task": {"t1": "0.001", "(none)": "0.004"},
        "tool": {"search": "0.001", "sql": "0.005"},
        "tag:project": {"apollo": "0.005"},
    }
    assert main([*argv, "--where", "project"]) == 2
    assert "--where 'project': give DIMENSION=VALUE" in capsys.readouterr().err
