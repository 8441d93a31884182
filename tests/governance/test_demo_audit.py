"""``paxis demo`` writes its audit log beside its ledger and prints where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.governance.audit import verify
from paxis_router.ledger.sqlite import SQLiteLedger


def test_demo_writes_a_verifiable_audit_log_beside_its_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "run" / "demo.db"
    ledger.parent.mkdir()
    assert main(["demo", "--limit", "8", "--ledger", str(ledger)]) == 0
    audit = tmp_path / "run" / "paxis-audit.jsonl"
    out = capsys.readouterr().out
    assert f"audit log: {audit} (started afresh with the ledger)" in out
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    rows = SQLiteLedger(ledger).rows()
    assert [(r["kind"], r["target"], r["decision"]) for r in records] == [
        ("route", row.tier, str(row.decision)) for row in rows
    ]
    assert verify(audit).records == len(rows)


def test_demo_audit_path_option_and_a_fresh_log_per_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = tmp_path / "elsewhere" / "audit.jsonl"
    args = ["demo", "--limit", "3", "--json", "--ledger", str(tmp_path / "d.db")]
    assert main([*args, "--audit", str(audit)]) == 0
    first = verify(audit)
    assert json.loads(capsys.readouterr().out)["audit_log"] == str(audit.resolve())
    assert main([*args, "--audit", str(audit)]) == 0  # a fresh ledger, a fresh log
    second = verify(audit)
    assert second.ok
    with SQLiteLedger(tmp_path / "d.db") as ledger:
        assert second.records == first.records == ledger.count()
