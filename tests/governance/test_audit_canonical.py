"""Every line must be the canonical bytes of what it parses to; malformed lines are findings.

Each variant below parses to the very record that was hashed, so a chain check that re-hashes
the parsed value accepts it, while a reader that takes the first of two duplicate keys, or a
tool that keeps the raw text, sees something else.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.errors import AuditError
from paxis_router.governance._audit_format import EncodedFields, unsigned_bytes
from paxis_router.governance.audit import AuditLog, canonical_json, verify

NOT_CANONICAL = "not in canonical form"


def write_log(path: Path, n: int = 3) -> list[bytes]:
    log = AuditLog(path, fsync=False)
    for i in range(n):
        log.append(kind="gate", decision="allow", target=f"t{i}", score=0.5, exit_code=0)
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    ("line", "edit", "error"),
    [
        (0, lambda b: b"\xef\xbb\xbf" + b, "starts with a byte-order mark"),
        (1, lambda b: b[:-1] + b"\r\n", "ends with CR (a CRLF line end)"),
        (
            1,
            lambda b: b.replace(b'"decision":"allow"', b'"decision":"deny","decision":"allow"'),
            "duplicate key 'decision': readers could see either value, only one was hashed",
        ),
        (1, lambda b: b.replace(b'"exit_code":0', b'"exit_code":-0'), NOT_CANONICAL),
        (1, lambda b: b.replace(b'"score":0.5', b'"score":5e-1'), NOT_CANONICAL),
        (1, lambda b: b.replace(b'"t1"', b'"\\u0074\\u0031"'), NOT_CANONICAL),
        (1, lambda b: b.replace(b'"decision":"allow"', b'"decision": "allow"'), NOT_CANONICAL),
        (
            1,
            lambda b: b.replace(b'{"decision":"allow",', b"{").replace(
                b'"exit_code":0,', b'"exit_code":0,"decision":"allow",'
            ),
            NOT_CANONICAL,
        ),
    ],
    ids=["bom", "crlf", "duplicate-key", "minus-zero", "exponent", "escape", "space", "order"],
)
def test_a_line_that_is_not_canonical_fails(
    tmp_path: Path, line: int, edit: object, error: str
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path)
    edited = edit(lines[line])  # type: ignore[operator]
    assert edited != lines[line]
    assert json.loads(edited) == json.loads(lines[line])  # a parser sees the same record...
    lines[line] = edited
    path.write_bytes(b"".join(lines))
    result = verify(path)  # ...but the bytes are not the ones that were hashed
    assert (result.ok, result.bad_line, result.records) == (False, line + 1, line)
    assert result.error is not None and result.error.startswith(error)


def test_a_depth_bomb_is_a_malformed_record_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with path.open("ab") as f:
        f.write(b"[" * 200_000 + b"]" * 200_000 + b"\n")
    result = verify(path)
    assert (result.ok, result.bad_line, result.records) == (False, 3, 2)
    assert result.error == "malformed record: JSON nested too deeply to parse"
    assert main(["audit", "verify", str(path)]) == 1
    assert capsys.readouterr().out.startswith(
        f"{path}: line 3: malformed record: JSON nested too deeply to parse"
    )
    with pytest.raises(AuditError, match="the last record is not valid audit JSON"):
        AuditLog(path, fsync=False).append(kind="gate", decision="allow")


def test_an_object_depth_bomb_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 3)
    lines.insert(1, b'{"a":' * 200_000 + b"1" + b"}" * 200_000 + b"\n")
    path.write_bytes(b"".join(lines))
    result = verify(path)
    assert (result.bad_line, result.error) == (
        2,
        "malformed record: JSON nested too deeply to parse",
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"score":NaN}\n', "holds a value with no canonical form"),
        (b'{"a":"\xff"}\n', "not valid JSON"),
        (b'{"a":' + b"9" * 5000 + b"}\n", "not valid JSON"),
        (b'{"seq":true,"ts":"","kind":"","decision":"","prev":"","hash":""}\n', "not in canon"),
    ],
    ids=["nan", "bad-utf8", "huge-int", "not-sorted"],
)
def test_other_malformed_lines(tmp_path: Path, raw: bytes, error: str) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(raw)
    result = verify(path)
    assert result.bad_line == 1
    assert result.error is not None and result.error.startswith(error)


def test_field_types_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"decision":"","hash":"","kind":"","prev":"","seq":true,"ts":""}\n')
    assert verify(path).error == "seq is not an integer: edited or damaged"
    path.write_bytes(b'{"decision":"","hash":"x","kind":"","prev":"","seq":0,"ts":""}\n')
    assert verify(path).error == "hash and prev must be 64 lower-case hex digits: edited or damaged"


def test_the_writer_refuses_values_with_no_canonical_form(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    with pytest.raises(AuditError, match="a field has no canonical JSON form"):
        log.append(kind="gate", decision="allow", score=float("nan"))
    with pytest.raises(AuditError, match="a field has no canonical JSON form"):
        log.append(kind="gate", decision="allow", reason="\ud800")
    with pytest.raises(AuditError, match="a field has no canonical JSON form"):
        log.append(kind="gate", decision="allow", blob=object())
    assert not (tmp_path / "audit.jsonl").exists() or verify(tmp_path / "audit.jsonl").ok


@pytest.mark.parametrize(
    ("order", "line", "error"),
    [
        ([1, 0, 2, 3, 4], 1, "records out of order: seq 1 where 0 was expected; seq 0 comes "
         "later, on line 2"),
        ([0, 2, 3, 4, 1], 2, "records out of order: seq 2 where 1 was expected; seq 1 comes "
         "later, on line 5"),
        ([4, 0, 1, 2, 3], 1, "records out of order: seq 4 where 0 was expected; seq 0 comes "
         "later, on line 2"),
        ([0, 1, 3, 2, 4], 3, "records out of order: seq 3 where 2 was expected; seq 2 comes "
         "later, on line 4"),
        ([0, 1, 3, 4], 3, "seq 3 where 2 was expected: 1 record(s) deleted before this line"),
        ([0, 1, 2, 1, 3, 4], 4, "a duplicate of line 2 (seq 1)"),
    ],
    ids=["swap-first", "move-to-end", "move-to-front", "swap-middle", "delete", "duplicate"],
)  # fmt: skip
def test_a_reorder_is_reported_as_a_reorder(
    tmp_path: Path, order: list[int], line: int, error: str
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 5)
    path.write_bytes(b"".join(lines[i] for i in order))
    result = verify(path)
    assert (result.ok, result.bad_line, result.error) == (False, line, error)


def test_a_reordered_keyed_log_is_a_reorder_too(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = "k" * 32
    with AuditLog(path, key=key, fsync=False) as log:
        for i in range(4):
            log.append(kind="route", decision="accept", target=str(i))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    result = verify(path, key=key)
    assert (result.bad_line, result.error) == (
        2,
        "records out of order: seq 2 where 1 was expected; seq 1 comes later, on line 3",
    )


@pytest.mark.parametrize(
    "record",
    [
        {"decision": "a", "hash": "h" * 64, "kind": "k", "seq": 0},
        {"hash": "h" * 64, "kind": "k"},
        {"decision": "a", "hash": "h" * 64},
        {"hash": "h" * 64},
        {"a": {"hash": "h" * 64}, "hash": "h" * 64, "z": '"hash":"' + "h" * 64 + '"'},
    ],
    ids=["middle", "first", "last", "alone", "nested-copy"],
)
def test_the_hashed_bytes_are_the_line_without_its_hash(record: dict[str, object]) -> None:
    raw = canonical_json(record)
    assert unsigned_bytes(raw, record) == canonical_json(
        {k: v for k, v in record.items() if k != "hash"}
    )


def test_the_writer_does_not_chain_onto_a_respelled_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 2)
    lines[-1] = lines[-1].replace(b'"decision":"allow"', b'"decision": "allow"')
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditError, match="the last record's hash does not match its content"):
        AuditLog(path, fsync=False).append(kind="gate", decision="allow")


@pytest.mark.parametrize(
    "chain",
    [{}, {"seq": 3, "prev": "p" * 64}, {"hash": "h" * 64, "key_id": "k1", "prev": "", "seq": 0}],
)
def test_the_writer_splices_chain_members_into_canonical_json(chain: dict[str, str | int]) -> None:
    fields = {
        "a": 1, "hash_x": "1", "key": 0, "kind": "k", "pre": [1.5], "prev_": None,
        "sa": {"b": 1, "a": "\n"}, "z": "é\u2028",
    }  # fmt: skip
    assert EncodedFields(fields).line(chain) == canonical_json({**fields, **chain})
    assert EncodedFields({}).line(chain) == canonical_json(dict(chain))
