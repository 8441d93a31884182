"""A keyed audit log and its signed checkpoints: the attacks a plain SHA-256 chain lets through.

Each attack is played by someone who can write the log file but does not hold the key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from paxis_router import Router
from paxis_router.config.schema import load_config
from paxis_router.errors import AuditError, ConfigError
from paxis_router.governance.audit import (
    GENESIS,
    AuditKey,
    AuditLog,
    canonical_json,
    checkpoints_path,
    head,
    record_hash,
    verify,
)

KEY = "correct horse battery staple 0123456789"
OTHER = "an attacker's own key, 32 bytes long!!"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return T0


def write_keyed(path: Path, n: int = 5, *, every: int = 256) -> list[dict[str, Any]]:
    with AuditLog(path, key=KEY, fsync=False, checkpoint_every=every, clock=clock) as log:
        return [log.append(kind="gate", decision="allow", target=f"t{i}") for i in range(n)]


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(canonical_json(r) + b"\n" for r in records))


def rechain(records: list[dict[str, Any]], start: int, key: AuditKey | None) -> None:
    """What an attacker does after an edit: recompute every hash from ``start`` on."""
    prev = records[start - 1]["hash"] if start else GENESIS
    for record in records[start:]:
        record["prev"] = prev
        record["hash"] = prev = record_hash(record, key)


def test_keyed_records_carry_a_key_id_and_an_hmac(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_keyed(path, 3)
    key = AuditKey(KEY)
    assert {r["key_id"] for r in records} == {key.key_id}
    assert records[1]["hash"] == record_hash(records[1], key)
    assert records[1]["hash"] != record_hash(records[1])  # not the plain SHA-256
    assert KEY not in path.read_text() and KEY not in checkpoints_path(path).read_text()
    result = verify(path, key=KEY)
    assert (result.ok, result.records, result.authenticated, result.key_id) == (
        True,
        3,
        True,
        key.key_id,
    )
    assert str(result) == (
        f"OK: 3 record(s), head {records[2]['hash']}; MACs checked with key {key.key_id}; "
        "the newest checkpoint covers 3 record(s)"
    )
    unchecked = verify(path)  # without the key: structure only, and it says so
    assert (unchecked.ok, unchecked.authenticated) == (True, False)
    assert "no key was given: MACs and checkpoints were not authenticated" in unchecked.notes[0]


def test_an_edit_with_a_recomputed_chain_fails_with_the_key(tmp_path: Path) -> None:
    """Issue 14 item 9: edit a record, recompute the whole chain; plain SHA-256 passes."""
    path = tmp_path / "audit.jsonl"
    write_keyed(path)
    records = read(path)
    records[1]["decision"] = "deny"
    rechain(records, 1, None)  # the attacker has no key: SHA-256 (or any guess) in its place
    write(path, records)
    result = verify(path, key=KEY)
    assert (result.ok, result.bad_line, result.records) == (False, 2, 1)
    assert result.error == "MAC mismatch: the record was edited (or forged without the key)"


def test_a_chain_rewritten_without_the_key_fails_at_line_1(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_keyed(path)
    records = read(path)
    for record in records:  # strip the keying and recompute a plain chain from the start
        del record["key_id"]
    records[3]["decision"] = "deny"
    rechain(records, 0, None)
    write(path, records)
    checkpoints_path(path).unlink()
    result = verify(path, key=KEY)
    assert (result.bad_line, result.error) == (
        1,
        "not keyed, but a key was given: the log was rewritten without the key (or written "
        "by a writer that had no key)",
    )
    assert verify(path).ok  # what an unkeyed check cannot see, and says:
    assert "Anyone who can write the file can edit records" in verify(path).notes[0]


@pytest.mark.parametrize(
    ("forge_key", "error"),
    [
        (OTHER, "written with key id {other} where the log's records before it have {mine}"),
        (None, "MAC mismatch: the record was edited (or forged without the key)"),
    ],
)
def test_a_record_appended_by_someone_without_the_key_fails(
    tmp_path: Path, forge_key: str | None, error: str
) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_keyed(path, 4)
    forged: dict[str, Any] = {
        "seq": 4, "ts": T0.isoformat(), "kind": "gate", "decision": "allow",
        "target": "exfiltrate", "prev": records[-1]["hash"],
    }  # fmt: skip
    if forge_key is None:  # the right key id, a guessed MAC
        forged["key_id"] = AuditKey(KEY).key_id
        forged["hash"] = hashlib.sha256(canonical_json(forged)).hexdigest()
    else:  # a MAC made with the attacker's own key
        forged["key_id"] = AuditKey(forge_key).key_id
        forged["hash"] = record_hash(forged, AuditKey(forge_key))
    with path.open("ab") as f:
        f.write(canonical_json(forged) + b"\n")
    result = verify(path, key=KEY)
    assert (result.ok, result.bad_line, result.records) == (False, 5, 4)
    expected = error.format(other=AuditKey(OTHER).key_id, mine=AuditKey(KEY).key_id)
    assert result.error is not None and result.error.startswith(expected)
    with pytest.raises(AuditError, match=r"refusing to chain onto it|one log, one key"):
        AuditLog(path, key=KEY, fsync=False).append(kind="gate", decision="allow")


def test_truncation_below_a_checkpoint_names_the_deleted_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_keyed(path, 10)  # close() writes a checkpoint covering all 10
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:7]))  # cut on a line boundary: a valid shorter chain
    result = verify(path, key=KEY)
    assert (result.ok, result.bad_line, result.records, result.checkpointed) == (False, 8, 7, 10)
    assert result.error == (
        f"the log ends after 7 record(s) but the checkpoint of {T0.isoformat()} (checkpoints "
        "line 1) covers 10: records 7 to 9 (lines 8-10) were deleted"
    )


def test_checkpoints_every_n_records_and_on_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_keyed(path, 10, every=4)
    cps = read(checkpoints_path(path))
    assert [(c["records"], c["head"]) for c in cps] == [
        (4, records[3]["hash"]),
        (8, records[7]["hash"]),
        (10, records[9]["hash"]),
    ]
    assert {c["ts"] for c in cps} == {T0.isoformat()}
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:6]))
    result = verify(path, key=KEY)
    assert (result.bad_line, result.records) == (7, 6)
    assert result.error is not None and "covers 10: records 6 to 9 (lines 7-10)" in result.error


def test_what_checkpoints_cannot_see_is_said(tmp_path: Path) -> None:
    """Cutting the log *and* its checkpoint file back to an older checkpoint passes: the
    records after the newest surviving checkpoint are named as not covered."""
    path = tmp_path / "audit.jsonl"
    write_keyed(path, 10, every=4)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:9]))
    cps = checkpoints_path(path).read_bytes().splitlines(keepends=True)
    checkpoints_path(path).write_bytes(b"".join(cps[:2]))
    result = verify(path, key=KEY)
    assert (result.ok, result.records, result.checkpointed) == (True, 9, 8)
    assert result.notes == (
        "1 record(s) after the newest checkpoint are not yet covered: deleting them is not "
        "detected until the next checkpoint",
    )


def test_a_forged_checkpoint_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_keyed(path, 3)
    cp_file = checkpoints_path(path)
    checkpoint = read(cp_file)[0]
    checkpoint["records"] = 2
    write(cp_file, [checkpoint])
    result = verify(path, key=KEY)
    assert (result.ok, result.bad_line) == (False, None)
    assert str(result) == (
        f"checkpoints {cp_file} line 1: MAC mismatch: the checkpoint was forged or edited"
    )


def test_a_log_replaced_by_another_with_the_same_key_fails_at_the_checkpoint(
    tmp_path: Path,
) -> None:
    path, other = tmp_path / "audit.jsonl", tmp_path / "other.jsonl"
    write_keyed(path, 5)
    with AuditLog(other, key=KEY, fsync=False, clock=clock) as log:
        for i in range(6):
            log.append(kind="gate", decision="deny", target=f"x{i}")
    path.write_bytes(other.read_bytes())
    result = verify(path, key=KEY)
    assert (result.ok, result.bad_line) == (False, 5)
    assert result.error is not None and result.error.startswith(
        f"does not match the checkpoint of {T0.isoformat()} (checkpoints line 1)"
    )


def test_one_log_one_key(tmp_path: Path) -> None:
    keyed, plain = tmp_path / "keyed.jsonl", tmp_path / "plain.jsonl"
    write_keyed(keyed, 1)
    AuditLog(plain, fsync=False).append(kind="gate", decision="allow")
    mine, other = AuditKey(KEY).key_id, AuditKey(OTHER).key_id
    with pytest.raises(
        AuditError, match=f"written with key id {mine} and this writer has key id {other}"
    ):
        AuditLog(keyed, key=OTHER, fsync=False).append(kind="gate", decision="allow")
    with pytest.raises(AuditError, match=f"written with key id {mine} and this writer has no key"):
        AuditLog(keyed, fsync=False).append(kind="gate", decision="allow")
    with pytest.raises(
        AuditError, match=f"written without a key and this writer has key id {mine}"
    ):
        AuditLog(plain, key=KEY, fsync=False).check()
    assert str(verify(keyed, key=OTHER)) == (
        f"checkpoints {checkpoints_path(keyed)} line 1: signed with another key (key id {mine}; "
        f"yours is {other})"
    )
    checkpoints_path(keyed).unlink()
    result = verify(keyed, key=OTHER)
    assert (result.bad_line, result.error) == (
        1,
        f"written with another key (key id {mine}; yours is {other}): forged, or verified "
        "with the wrong key",
    )


def test_key_sources_and_bad_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_id = AuditKey(KEY).key_id
    monkeypatch.setenv("PAXIS_AUDIT_KEY", f"  {KEY}\n")
    env_log = AuditLog(tmp_path / "a.jsonl", fsync=False)
    assert env_log.key is not None and env_log.key.key_id == key_id
    assert repr(env_log.key) == f"AuditKey(key_id={key_id!r})"
    assert AuditLog(tmp_path / "b.jsonl", key_env=None).key is None
    key_file = tmp_path / "audit.key"
    key_file.write_text(OTHER + "\n")
    key_file.chmod(0o600)
    from_file = AuditLog(tmp_path / "c.jsonl", key_file=key_file)
    assert from_file.key is not None and from_file.key.key_id == AuditKey(OTHER).key_id
    assert len(AuditKey.generate()) == 64
    with pytest.raises(ConfigError, match=r"\$PAXIS_AUDIT_KEY: an audit key needs at least 32"):
        monkeypatch.setenv("PAXIS_AUDIT_KEY", "short")
        AuditLog(tmp_path / "d.jsonl")
    with pytest.raises(ConfigError, match=r"nope\.key: cannot read the audit key file"):
        AuditLog(tmp_path / "e.jsonl", key_file=tmp_path / "nope.key")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        AuditKey(b"x" * 31)


def test_policy_file_names_the_key_file_and_checkpoints(tmp_path: Path) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers: [{kind: litellm, model: gpt-4o}]\n"
        f"audit: {{path: '{tmp_path / 'a.jsonl'}', key_file: '{key_file}', "
        f"checkpoints: '{tmp_path / 'cp' / 'a.cp'}', checkpoint_every: 2}}\n"
    )
    audit = Router.from_config(load_config(policy)).audit
    assert audit is not None and audit.key is not None
    assert (audit.key.key_id, audit.checkpoints, audit.checkpoint_every) == (
        AuditKey(KEY).key_id,
        tmp_path / "cp" / "a.cp",
        2,
    )
    for i in range(3):
        audit.append(kind="gate", decision="allow", target=str(i))
    audit.close()
    result = verify(audit.path, key=KEY, checkpoints=tmp_path / "cp" / "a.cp")
    assert (result.ok, result.checkpointed) == (True, 3)
    assert head(audit.path, key=KEY) == result.head


def test_checkpoint_now_and_an_unkeyed_log_has_none(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY, fsync=False, checkpoint_every=0, clock=clock)
    first = log.append(kind="gate", decision="allow")
    assert log.checkpoint() == {
        "head": first["hash"],
        "key_id": AuditKey(KEY).key_id,
        "mac": read(checkpoints_path(path))[0]["mac"],
        "records": 1,
        "ts": T0.isoformat(),
    }
    log.close()
    assert len(read(checkpoints_path(path))) == 1  # nothing new since: no second checkpoint
    with pytest.raises(AuditError, match="checkpoints need a key"):
        AuditLog(tmp_path / "plain.jsonl", key_env=None).checkpoint()
