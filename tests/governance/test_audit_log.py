"""The hash-chained audit log: appends, one test per kind of tampering, concurrent writers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.errors import AuditError
from paxis_router.governance.audit import (
    GENESIS,
    AuditLog,
    canonical_json,
    head,
    payload_sha256,
    record_hash,
    verify,
)

REPO = Path(__file__).resolve().parents[2]


def write_log(path: Path, n: int = 5) -> list[dict[str, object]]:
    log = AuditLog(path, fsync=False)
    return [
        log.append(kind="gate", action="call_tier", target=f"tier{i}", decision="allow")
        for i in range(n)
    ]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_records_chain_and_hash_their_canonical_json(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    first = log.append(
        kind="gate", decision="deny", rule_id="r1", estimated_cost_usd=Decimal("0.10"),
        payload="secret prompt", skipped=None, pii_kinds=("email",),
    )  # fmt: skip
    second = log.append(kind="route", decision="accept")
    assert (first["seq"], first["prev"]) == (0, GENESIS)
    assert (second["seq"], second["prev"]) == (1, first["hash"])
    assert first["estimated_cost_usd"] == "0.10"
    assert first["pii_kinds"] == ["email"]
    assert "skipped" not in first
    assert first["payload_sha256"] == payload_sha256("secret prompt")
    assert "secret prompt" not in path.read_text()
    on_disk = [json.loads(line) for line in lines(path)]
    assert on_disk == [first, second]
    assert record_hash(on_disk[0]) == first["hash"]
    assert lines(path)[0] == canonical_json(first).decode() + "\n"
    assert str(verify(path)) == f"OK: 2 record(s), head {second['hash']}"
    assert head(path) == second["hash"]


def test_payload_is_stored_only_when_configured(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", include_payload=True, fsync=False)
    record = log.append(kind="gate", decision="allow", payload="the prompt")
    assert record["payload"] == "the prompt"
    assert record["payload_sha256"] == payload_sha256(b"the prompt")


def test_empty_and_missing_parent(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "audit.jsonl"
    AuditLog(path, fsync=False).append(kind="route", decision="stop")
    assert verify(path).records == 1
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert (verify(empty).ok, verify(empty).records, verify(empty).head) == (True, 0, GENESIS)


# --- one test per kind of tampering -------------------------------------------------------------


def test_edited_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    text = lines(path)
    text[2] = text[2].replace('"decision":"allow"', '"decision":"deny"')
    path.write_text("".join(text))
    result = verify(path)
    assert (result.ok, result.bad_line, result.records) == (False, 3, 2)
    assert result.error == "hash mismatch: the record was edited"


def test_edited_record_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    text = lines(path)
    record = json.loads(text[1])
    record["decision"] = "deny"
    record["hash"] = record_hash(record)
    text[1] = canonical_json(record).decode() + "\n"
    path.write_text("".join(text))
    result = verify(path)
    assert (result.bad_line, result.error) == (
        3,
        "prev does not match the previous record's hash: records replaced",
    )


def test_reordered_records_are_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    text = lines(path)
    text[1], text[2] = text[2], text[1]
    path.write_text("".join(text))
    result = verify(path)
    assert (result.bad_line, result.error) == (
        2,
        "records out of order: seq 2 where 1 was expected; seq 1 comes later, on line 3",
    )


def test_duplicated_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    text = lines(path)
    path.write_text("".join([*text[:3], text[2], *text[3:]]))
    result = verify(path)
    assert (result.bad_line, result.error) == (4, "a duplicate of line 3 (seq 2)")


def test_deleted_middle_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    text = lines(path)
    del text[2]
    path.write_text("".join(text))
    result = verify(path)
    assert (result.bad_line, result.records) == (3, 2)
    assert result.error is not None and "1 record(s) deleted before this line" in result.error


def test_deleted_first_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    path.write_text("".join(lines(path)[1:]))
    result = verify(path)
    assert (result.bad_line, result.records) == (1, 0)
    assert result.error is not None and "seq 1 where 0 was expected" in result.error


def test_renumbered_chain_after_a_deletion_still_fails(tmp_path: Path) -> None:
    """Deleting a record and fixing every later seq and hash still breaks ``prev``."""
    path = tmp_path / "audit.jsonl"
    write_log(path)
    records = [json.loads(line) for line in lines(path)]
    del records[1]
    for i, record in enumerate(records):
        record["seq"] = i
        record["hash"] = record_hash(record)
    path.write_text("".join(canonical_json(r).decode() + "\n" for r in records))
    result = verify(path)
    assert (result.bad_line, result.error) == (
        2,
        "prev does not match the previous record's hash: records replaced",
    )


def test_truncated_inside_a_record_is_a_half_written_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    result = verify(path)
    assert (result.ok, result.bad_line, result.records) == (False, 5, 4)
    assert result.error is not None and result.error.startswith("half-written last line")


def test_half_written_last_line_blocks_further_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with path.open("a") as f:
        f.write('{"seq": 2, "kind": "ga')
    assert verify(path).bad_line == 3
    with pytest.raises(AuditError, match="the last line is half-written; refusing to append"):
        AuditLog(path, fsync=False).append(kind="gate", decision="allow")
    with pytest.raises(AuditError, match=r"line 3: half-written"):
        head(path)


def test_a_garbage_last_line_blocks_further_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("not json\n")
    assert verify(path).error is not None
    with pytest.raises(AuditError, match="the last record is not valid audit JSON"):
        AuditLog(path, fsync=False).append(kind="gate", decision="allow")


def test_deleted_newest_records_need_the_exported_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path)
    exported = head(path)
    assert exported == records[-1]["hash"]
    path.write_text("".join(lines(path)[:3]))  # truncated on a line boundary
    assert verify(path).ok  # undetectable without the exported head: documented
    result = verify(path, expected_head=exported)
    assert (result.ok, result.bad_line, result.records) == (False, 4, 3)
    assert result.error is not None and "newest records were deleted" in result.error


def test_a_rewritten_chain_is_caught_only_by_the_exported_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    exported = head(path)
    path.unlink()
    forged = write_log(path)  # a complete new, self-consistent chain
    assert verify(path).ok
    assert not verify(path, expected_head=exported).ok
    assert verify(path, expected_head=str(forged[2]["hash"])).ok


def test_an_old_head_still_verifies_after_the_log_grew(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    exported = head(path)
    AuditLog(path, fsync=False).append(kind="route", decision="accept")
    result = verify(path, expected_head=exported)
    assert (result.ok, result.records) == (True, 3)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{not json\n", "not valid JSON"),
        ("[1, 2]\n", "not a JSON object"),
        ('{"seq":0}\n', "missing field(s) decision, hash, kind, prev, ts"),
    ],
)
def test_malformed_lines(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(line)
    result = verify(path)
    assert result.bad_line == 1
    assert result.error is not None and result.error.startswith(error)


# --- concurrency --------------------------------------------------------------------------------

_WRITER = """
import sys
from paxis_router.governance.audit import AuditLog
log = AuditLog(sys.argv[1], fsync=False)
for i in range(int(sys.argv[3])):
    log.append(kind="route", decision="accept", target=f"{sys.argv[2]}-{i}")
"""


def test_several_processes_append_to_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers, per_writer = 4, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"p{w}", str(per_writer)], cwd=REPO
        )
        for w in range(writers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * writers
    result = verify(path)
    assert (result.ok, result.records) == (True, writers * per_writer)
    targets = [json.loads(line)["target"] for line in lines(path)]
    for w in range(writers):
        assert [t for t in targets if t.startswith(f"p{w}-")] == [
            f"p{w}-{i}" for i in range(per_writer)
        ]


def test_threads_sharing_one_log_and_separate_logs(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    shared = AuditLog(path, fsync=False)

    def work(log: AuditLog, name: str) -> None:
        for i in range(25):
            log.append(kind="gate", decision="allow", target=f"{name}-{i}")

    threads = [threading.Thread(target=work, args=(shared, f"s{i}")) for i in range(3)]
    threads += [
        threading.Thread(target=work, args=(AuditLog(path, fsync=False), f"o{i}")) for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify(path)
    assert (result.ok, result.records) == (True, 150)


def test_request_payload_is_one_json_dumps_of_the_wire_messages_long_texts_included() -> None:
    import json as _json

    from paxis_router.governance.audit import (
        payload_sha256,
        request_payload,
        request_payload_sha256,
    )
    from paxis_router.types import ChatRequest, FunctionCall, Message, ToolCall

    long_text = 'Skill: ünïcode "quotes" \\ backslash\n' * 200  # remembered once encoded
    call = ToolCall(id="c1", function=FunctionCall(name="f", arguments='{"a": "é"}'))
    request = ChatRequest(
        messages=(
            Message(role="system", content=long_text),
            Message(role="user", content="héllo\u2028", name="ann"),
            Message(role="assistant", content=None, tool_calls=(call,)),
            Message(role="tool", content="42", tool_call_id="c1"),
        )
    )
    expected = _json.dumps(
        [m.wire() for m in request.messages], ensure_ascii=False, separators=(",", ":")
    )
    assert request_payload(request) == expected
    assert request_payload(request) == expected  # the long text, from memory this time
    for _ in range(2):  # the second time from the remembered opening and message bytes
        assert request_payload_sha256(request) == payload_sha256(expected)
    shorter = ChatRequest(messages=request.messages[:1])
    assert request_payload_sha256(shorter) == payload_sha256(request_payload(shorter))
    assert request_payload_sha256(ChatRequest.from_text("x")) == payload_sha256(
        request_payload(ChatRequest.from_text("x"))
    )
