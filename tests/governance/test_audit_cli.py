"""``paxis audit verify`` and ``paxis audit head``: exit codes and what they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.governance.audit import AuditLog


def make_log(path: Path, n: int = 3) -> None:
    log = AuditLog(path, fsync=False)
    for i in range(n):
        log.append(kind="route", decision="accept", target=f"t{i}")


def test_verify_ok_and_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path)
    assert main(["audit", "head", str(path)]) == 0
    exported = capsys.readouterr().out.strip()
    assert len(exported) == 64
    assert main(["audit", "verify", str(path), "--head", exported]) == 0
    assert capsys.readouterr().out == f"{path}: OK: 3 record(s), head {exported}\n"
    assert main(["audit", "head", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": str(path),
        "records": 3,
        "head": exported,
    }


def test_verify_names_the_first_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path)
    text = path.read_text().splitlines(keepends=True)
    text[1] = text[1].replace('"t1"', '"t9"')
    path.write_text("".join(text))
    assert main(["audit", "verify", str(path)]) == 1
    assert capsys.readouterr().out == f"{path}: line 2: hash mismatch: the record was edited\n"
    assert main(["audit", "verify", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["bad_line"], out["records"]) == (False, 2, 1)
    assert main(["audit", "head", str(path)]) == 1
    assert "not exporting the head of a broken chain" in capsys.readouterr().out


def test_verify_with_a_head_file_detects_a_deleted_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, 4)
    assert main(["audit", "head", str(path)]) == 0
    head_file = tmp_path / "audit.head"
    head_file.write_text(capsys.readouterr().out)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    assert main(["audit", "verify", str(path)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", str(path), "--head-file", str(head_file)]) == 1
    assert "line 3: the exported head" in capsys.readouterr().out


def test_missing_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["audit", "verify", str(missing)]) == 2
    assert f"{missing}: no such audit log" in capsys.readouterr().err
    assert main(["audit", "head", str(missing)]) == 2


def test_verify_defaults_to_the_demo_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    make_log(tmp_path / "paxis-demo.audit.jsonl", 1)
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("paxis-demo.audit.jsonl: OK: 1 record(s)")
