"""An append-only, hash-chained audit log (JSON Lines) and its verifier.

One record per gate decision and per routing decision: who (``principal``), what (``kind``,
``action``, ``target``), when (``ts``, aware UTC), where (``destination``), the ``decision``, the
``rule_id`` and ``policy_version`` behind it, the ``reason``, and ``payload_sha256`` (the SHA-256 of
the payload; the payload itself only when the log is opened with ``include_payload=True``).
Each record carries ``seq`` (0, 1, 2, ...), ``prev`` (the previous record's hash; 64 zeros for the
first) and ``hash``: the SHA-256 of the record's canonical JSON (sorted keys, no spaces, UTF-8)
without the ``hash`` key.

Several processes may append to one file at once: each append takes an exclusive ``fcntl.flock``
on the file, reads the tail record's hash under the lock, and writes the new line with a single
``write`` (``O_APPEND``), then ``fsync``s it. Keep the file on a local filesystem: ``flock`` is not
reliable over every network filesystem (NFS before v4, some FUSE mounts). An append after a
damaged last line raises AuditError instead of chaining onto it: the damage stays evidence.

What :func:`verify` detects, naming the first bad line:

* a record edited (its hash no longer matches its content),
* records reordered or deleted in the middle or at the start (``seq`` / ``prev`` break the chain),
* a half-written last line (a crash or a truncation inside a record),
* the newest records deleted (or the file truncated on a line boundary) — **only** when given the
  head hash exported earlier (``paxis audit head FILE``) and kept somewhere the writer of the log
  cannot change: a chain that simply ends earlier is otherwise indistinguishable from a shorter log.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
    >>> log = AuditLog(path, fsync=False)
    >>> first = log.append(kind="gate", action="call_tier", decision="allow", rule_id="local")
    >>> verify(path).ok, verify(path).records
    (True, 1)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from paxis_router.errors import AuditError
from paxis_router.types import utc_now

if TYPE_CHECKING:
    from paxis_router.governance.gate import Action, GateDecision
    from paxis_router.types import Attempt, ChatRequest

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

DEFAULT_AUDIT_PATH = "paxis-demo.audit.jsonl"

_REQUIRED = ("seq", "ts", "kind", "decision", "prev", "hash")
_TAIL_CHUNK = 8192


def canonical_json(record: dict[str, Any]) -> bytes:  # Any: JSON values
    """The bytes a record's hash covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict[str, Any]) -> str:  # Any: JSON values
    """SHA-256 (hex) of the record's canonical JSON without its ``hash`` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def payload_sha256(payload: str | bytes) -> str:
    """SHA-256 (hex) of a payload (text is hashed as UTF-8)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hashlib.sha256(data).hexdigest()


def request_payload(request: ChatRequest) -> str:
    """The canonical text of what a request sends: its messages as JSON."""
    return json.dumps(
        [m.wire() for m in request.messages],
        ensure_ascii=False,
        separators=(",", ":"),
    )


class AuditLog:
    """An append-only hash-chained JSONL audit log.

    Args:
        path: the log file (created with its parent folder when missing).
        include_payload: also store the payload text in each record that has one. Off by default:
            the log then holds hashes only, never prompts or answers.
        fsync: flush each record to disk before returning (on by default).

    Example:
        >>> import tempfile, pathlib
        >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "a.jsonl", fsync=False)
        >>> log.append(kind="route", action="call_tier", decision="accept")["seq"]
        0
    """

    def __init__(self, path: str | Path, *, include_payload: bool = False, fsync: bool = True):
        self.path = Path(path)
        self.include_payload = include_payload
        self.fsync = fsync
        self._lock = threading.Lock()

    def append(self, *, payload: str | None = None, **fields: Any) -> dict[str, Any]:  # Any: JSON
        """Append one record built from ``fields`` and return it (with seq, prev and hash).

        ``payload`` is hashed into ``payload_sha256`` and stored only with ``include_payload``.
        Raises AuditError when the file's last line is damaged (run ``paxis audit verify``).
        """
        record: dict[str, Any] = {k: _jsonable(v) for k, v in fields.items() if v is not None}
        record.setdefault("ts", utc_now().isoformat())
        if payload is not None:
            record["payload_sha256"] = payload_sha256(payload)
            if self.include_payload:
                record["payload"] = payload
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                prev_seq, prev_hash = _tail(fd, self.path)
                record["seq"] = prev_seq + 1
                record["prev"] = prev_hash
                record.pop("hash", None)
                record["hash"] = record_hash(record)
                line = canonical_json(record) + b"\n"
                written = os.write(fd, line)
                if written != len(line):
                    raise AuditError(f"{self.path}: short write ({written} of {len(line)} bytes)")
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the flock
        return record

    def record_gate(
        self, action: Action, decision: GateDecision, *, request: ChatRequest, payload: str | None
    ) -> dict[str, Any]:  # Any: JSON
        """Append a gate decision for ``action`` (``payload``: what was, or would be, sent)."""
        return self.append(
            kind="gate",
            request_id=request.request_id,
            principal=action.principal,
            action=action.kind,
            target=action.target,
            model=action.model,
            skill=action.skill,
            destination=action.destination,
            data_class=action.data_class,
            estimated_cost_usd=action.estimated_cost_usd,
            decision=decision.effect,
            rule_id=decision.rule_id,
            policy_version=decision.policy_version,
            reason=decision.reason,
            pii_kinds=list(decision.pii_kinds) or None,
            payload=payload,
        )

    def record_route(
        self,
        attempt: Attempt,
        *,
        request: ChatRequest,
        route_id: str,
        destination: str,
        degraded: bool = False,
    ) -> dict[str, Any]:  # Any: JSON
        """Append the routing decision (accept / escalate / stop) taken after ``attempt``."""
        completion = attempt.completion
        return self.append(
            kind="route",
            request_id=request.request_id,
            route_id=route_id,
            principal=request.team,
            action="call_tier",
            target=attempt.tier,
            model=attempt.model,
            destination=destination,
            data_class=request.data_class,
            decision=str(attempt.decision),
            reason=attempt.reason,
            error_type=attempt.error_type,
            cost_usd=attempt.cost_usd,
            degraded=degraded or None,
            payload=completion.content if completion is not None else None,
        )


def _jsonable(value: Any) -> Any:  # Any: JSON values in, JSON values out
    if isinstance(value, (Decimal, PurePath)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _tail(fd: int, path: Path) -> tuple[int, str]:
    """(seq, hash) of the file's last record; (-1, GENESIS) for an empty file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return -1, GENESIS
    end = size
    buffer = b""
    while True:
        start = max(0, end - _TAIL_CHUNK)
        buffer = os.pread(fd, end - start, start) + buffer
        end = start
        if not buffer.endswith(b"\n"):
            raise AuditError(
                f"{path}: the last line is half-written; refusing to append after a damaged "
                "record. Run `paxis audit verify` and keep the damaged file as evidence."
            )
        cut = buffer.rfind(b"\n", 0, len(buffer) - 1)
        if cut >= 0 or start == 0:
            last = buffer[cut + 1 :]
            break
    try:
        record = json.loads(last)
        return int(record["seq"]), str(record["hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(
            f"{path}: the last record is not valid audit JSON ({exc}); run `paxis audit verify`"
        ) from exc


# --- verification -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    ``records`` counts the records that verified before the first problem; ``head`` is the hash
    of the last good record (GENESIS for an empty log); ``bad_line`` is the 1-based line number of
    the first bad record and ``error`` what is wrong with it (both None when ``ok``).
    """

    ok: bool
    records: int
    head: str
    bad_line: int | None = None
    error: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.records} record(s), head {self.head}"
        return f"line {self.bad_line}: {self.error}"


def verify(path: str | Path, *, expected_head: str | None = None) -> VerifyResult:
    """Check the whole chain of an audit log; see the module docstring for what it detects.

    Args:
        path: the JSONL file.
        expected_head: a head hash exported earlier; it must be some record's hash in the file.
            Without it, deleting the newest records cannot be detected.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
        >>> _ = path.write_text('{"seq": 0}\\n')
        >>> str(verify(path))
        'line 1: missing field(s) decision, hash, kind, prev, ts'
    """
    prev_hash, count, number, seen_head = GENESIS, 0, 0, expected_head is None
    with Path(path).open("rb") as handle:  # streamed: a long log is never held in memory
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return VerifyResult(
                    False,
                    count,
                    prev_hash,
                    number,
                    "half-written last line (no newline): the file was truncated or a write "
                    "was cut off",
                )
            problem = _check_line(raw, count, prev_hash)
            if problem is not None:
                return VerifyResult(False, count, prev_hash, number, problem)
            prev_hash = json.loads(raw)["hash"]
            count += 1
            if prev_hash == expected_head:
                seen_head = True
    if not seen_head:
        return VerifyResult(
            False,
            count,
            prev_hash,
            number + 1,
            f"the exported head {expected_head} is not in the log: the newest records were "
            "deleted (or the file was truncated on a line boundary, or replaced)",
        )
    return VerifyResult(True, count, prev_hash)


def _check_line(raw: bytes, index: int, prev_hash: str) -> str | None:
    try:
        record = json.loads(raw)
    except ValueError as exc:
        return f"not valid JSON ({exc}): edited or damaged"
    if not isinstance(record, dict):
        return "not a JSON object: edited or damaged"
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        return f"missing field(s) {', '.join(sorted(missing))}"
    if record_hash(record) != record["hash"]:
        return "hash mismatch: the record was edited"
    if record["seq"] != index:
        if isinstance(record["seq"], int) and record["seq"] > index:
            return (
                f"seq {record['seq']} where {index} was expected: "
                f"{record['seq'] - index} record(s) deleted before this line (or reordered)"
            )
        return f"seq {record['seq']} where {index} was expected: records reordered or duplicated"
    if record["prev"] != prev_hash:
        return "prev does not match the previous record's hash: records replaced or reordered"
    return None


def head(path: str | Path) -> str:
    """The hash of the last record (GENESIS for an empty log), after verifying the chain.

    Raises AuditError naming the first bad line when the chain does not verify.
    """
    result = verify(path)
    if not result.ok:
        raise AuditError(f"{path}: {result}")
    return result.head
