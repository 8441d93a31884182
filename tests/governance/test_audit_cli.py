"""``paxis audit verify`` and ``paxis audit head``: exit codes and what they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from paxis_router.cli import main
from paxis_router.cli.audit import DEFAULT_FILE
from paxis_router.config.schema import AuditSpec
from paxis_router.governance.audit import DEFAULT_AUDIT_PATH, AuditKey, AuditLog

REPO = Path(__file__).resolve().parents[2]


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
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: OK: 3 record(s), head {exported}"
    assert out[1].startswith("  note: unkeyed chain (plain SHA-256): it detects accidental")
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


def test_verify_defaults_to_the_file_policies_and_the_demo_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: one default name wherever a default is given."""
    policy = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    assert DEFAULT_FILE == DEFAULT_AUDIT_PATH == policy["audit"]["path"] == "paxis-audit.jsonl"
    assert AuditSpec().path == Path(DEFAULT_AUDIT_PATH)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--limit", "2", "--json"]) == 0  # ledger and audit log in the CWD
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("paxis-audit.jsonl: OK: ")


KEY = "k" * 32


def make_keyed_log(path: Path, n: int = 3) -> None:
    with AuditLog(path, key=KEY, fsync=False) as log:
        for i in range(n):
            log.append(kind="route", decision="accept", target=f"t{i}")


def test_verify_a_keyed_log_with_the_key_from_the_env_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    make_keyed_log(path)
    key_id = AuditKey(KEY).key_id
    assert main(["audit", "verify", str(path)]) == 2  # keyed, and no key: cannot judge
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{path}: OK: 3 record(s)")
    assert f"the log is keyed (key id {key_id}): only its structure was checked" in captured.err
    monkeypatch.setenv("PAXIS_AUDIT_KEY", KEY)
    assert main(["audit", "verify", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["authenticated"], out["key_id"], out["checkpointed"]) == (
        True,
        True,
        key_id,
        3,
    )
    assert out["notes"] == []
    monkeypatch.delenv("PAXIS_AUDIT_KEY")
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    assert main(["audit", "head", str(path), "--key-file", str(key_file)]) == 0
    assert len(capsys.readouterr().out.strip()) == 64
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))  # truncated below the checkpoint
    assert main(["audit", "verify", str(path), "--key-file", str(key_file)]) == 1
    assert "line 3: the log ends after 2 record(s) but the checkpoint of" in capsys.readouterr().out


def test_checkpoint_and_keygen_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "keygen"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(key) == 64 and int(key, 16) >= 0
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=key, fsync=False, checkpoint_every=0) as log:
        log.append(kind="route", decision="accept")
    elsewhere = tmp_path / "kept-elsewhere.checkpoints"
    assert main(["audit", "checkpoint", str(path), "--checkpoints", str(elsewhere)]) == 2
    assert "a checkpoint is signed with the log's key" in capsys.readouterr().err
    monkeypatch.setenv("PAXIS_AUDIT_KEY", key)
    assert main(["audit", "checkpoint", str(path), "--checkpoints", str(elsewhere)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["records"] == 1
    assert json.loads(elsewhere.read_text()) == printed
    assert main(["audit", "verify", str(path), "--checkpoints", str(elsewhere)]) == 0
    assert "the newest checkpoint covers 1 record(s)" in capsys.readouterr().out
    path.write_bytes(b"")
    assert main(["audit", "verify", str(path), "--checkpoints", str(elsewhere)]) == 1
    assert "line 1: the log ends after 0 record(s)" in capsys.readouterr().out
    assert main(["audit", "checkpoint", str(path)]) == 1  # FILE.checkpoints: it was cut
    assert "not signing a checkpoint of a broken log" in capsys.readouterr().out
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert main(["audit", "checkpoint", str(empty)]) == 2
    assert "an empty log has nothing to checkpoint" in capsys.readouterr().err
