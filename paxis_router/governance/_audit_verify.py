"""Verifying an audit log: the chain, the key's MACs and the signed checkpoints.

Public through :mod:`paxis_router.governance.audit` (``verify``, ``VerifyResult``, ``head``).
"""

from __future__ import annotations

import fcntl
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from paxis_router.errors import AuditError
from paxis_router.governance._audit_format import (
    GENESIS,
    KEY_ENV,
    REQUIRED,
    AuditKey,
    Checkpoint,
    checkpoints_path,
    digest,
    is_hex64,
    is_int,
    parse_checkpoint,
    parse_line,
    resolve_key,
    unsigned_bytes,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    ``records`` counts the records that verified before the first problem; ``head`` is the hash
    of the last good record (GENESIS for an empty log); ``bad_line`` is the 1-based line number
    of the first bad record and ``error`` what is wrong with it (both None when ``ok``; a bad
    checkpoint file has ``error`` but no ``bad_line``). ``authenticated``: every record's MAC was
    checked with the key. ``key_id``: the key the records say they were written with (None:
    an unkeyed chain). ``checkpointed``: the records the newest checkpoint covers. ``notes``:
    what this check could not detect, in plain words.
    """

    ok: bool
    records: int
    head: str
    bad_line: int | None = None
    error: str | None = None
    authenticated: bool = False
    key_id: str | None = None
    checkpointed: int = 0
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.ok:
            if self.bad_line is None:
                return self.error or ""
            return f"line {self.bad_line}: {self.error}"
        text = f"OK: {self.records} record(s), head {self.head}"
        if self.authenticated:
            text += f"; MACs checked with key {self.key_id}"
            if self.checkpointed:
                text += f"; the newest checkpoint covers {self.checkpointed} record(s)"
        return text


def verify(
    path: str | Path,
    *,
    key: AuditKey | bytes | str | None = None,
    checkpoints: str | Path | None = None,
    expected_head: str | None = None,
) -> VerifyResult:
    """Check an audit log: every line canonical, the chain, the key's MACs, the checkpoints.

    The file is checked as it was when the check began (its size is read under a shared
    ``flock``), so a writer appending meanwhile is neither blocked nor seen half-way.

    Args:
        path: the JSONL file.
        key: the log's key (an :class:`AuditKey`, or its text). With it, a record that is
            edited, re-hashed, forged, or written without the key fails, and checkpoints are
            authenticated. Without it only the structure is checked (see ``notes``).
        checkpoints: the checkpoint file; by default ``<path>.checkpoints`` when it exists. A
            log with fewer records than a checkpoint covers was truncated.
        expected_head: a head hash exported earlier; it must be some record's hash in the file.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
        >>> _ = path.write_text('{"seq":0}\\n')
        >>> str(verify(path))
        'line 1: missing field(s) decision, hash, kind, prev, ts'
    """
    audit_key = resolve_key(key, key_env=None)
    cp_path = Path(checkpoints) if checkpoints is not None else checkpoints_path(path)
    loaded = _load_checkpoints(cp_path, audit_key, required=checkpoints is not None)
    if isinstance(loaded, str):
        return VerifyResult(False, 0, GENESIS, None, loaded)
    with Path(path).open("rb") as handle:
        size = _snapshot_size(handle)
        scan = _Scan(Path(path), size, audit_key, loaded, expected_head)
        return scan.run(_lines(handle, size))


def head(path: str | Path, *, key: AuditKey | bytes | str | None = None) -> str:
    """The hash of the last record (GENESIS for an empty log), after verifying the log.

    Raises AuditError naming the first bad line when the log does not verify.
    """
    result = verify(path, key=key)
    if not result.ok:
        raise AuditError(f"{path}: {result}")
    return result.head


# --- the scan -----------------------------------------------------------------------------------


class _Scan:
    """One pass over the log; state for the first problem's explanation."""

    def __init__(
        self,
        path: Path,
        size: int,
        key: AuditKey | None,
        checkpoints: list[Checkpoint],
        expected_head: str | None,
    ) -> None:
        self.path, self.size, self.key = path, size, key
        self.checkpoints = checkpoints
        self.by_records = {c.records: c for c in checkpoints}
        self.newest = max(checkpoints, key=lambda c: c.records, default=None)
        self.expected_head = expected_head
        self.count, self.prev = 0, GENESIS
        self.key_id: str | None = None
        self.seen_head = expected_head is None

    def fail(self, line: int | None, error: str) -> VerifyResult:
        return VerifyResult(
            False, self.count, self.prev, line, error, key_id=self.key_id, checkpointed=self._cp()
        )

    def _cp(self) -> int:
        return self.newest.records if self.newest is not None else 0

    def run(self, lines: Iterator[tuple[int, bytes]]) -> VerifyResult:
        number = 0
        for number, raw in lines:
            if not raw.endswith(b"\n"):
                return self.fail(
                    number,
                    "half-written last line (no newline): the file was truncated or a write "
                    "was cut off",
                )
            record, problem = parse_line(raw[:-1])
            if record is None:
                return self.fail(number, problem or "")
            problem = self._check(record, raw[:-1])
            if problem is None and record["seq"] != self.count:
                problem = self._explain_seq(record, number, lines)
            if problem is None and record["prev"] != self.prev:
                problem = "prev does not match the previous record's hash: records replaced"
            if problem is None:
                problem = self._check_checkpoint(record["hash"])
            if problem is not None:
                return self.fail(number, problem)
            self.prev = record["hash"]
            self.count += 1
            if self.prev == self.expected_head:
                self.seen_head = True
        if self.newest is not None and self.count < self.newest.records:
            n = self.newest
            return self.fail(
                self.count + 1,
                f"the log ends after {self.count} record(s) but the checkpoint of {n.ts} "
                f"(checkpoints line {n.line}) covers {n.records}: records {self.count} to "
                f"{n.records - 1} (lines {self.count + 1}-{n.records}) were deleted",
            )
        if not self.seen_head:
            return self.fail(
                number + 1,
                f"the exported head {self.expected_head} is not in the log: the newest records "
                "were deleted (or the file was truncated on a line boundary, or replaced)",
            )
        return VerifyResult(
            True,
            self.count,
            self.prev,
            authenticated=self.key is not None and self.count > 0,
            key_id=self.key_id,
            checkpointed=self._cp(),
            notes=self._notes(),
        )

    def _check(self, record: dict[str, Any], raw: bytes) -> str | None:  # Any: JSON values
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            return f"missing field(s) {', '.join(sorted(missing))}"
        if not is_int(record["seq"]):
            return "seq is not an integer: edited or damaged"
        if not (is_hex64(record["hash"]) and is_hex64(record["prev"])):
            return "hash and prev must be 64 lower-case hex digits: edited or damaged"
        record_key = record.get("key_id")
        if self.count == 0:
            self.key_id = record_key if isinstance(record_key, str) else None
        elif record_key != self.key_id:
            return (
                f"written with key id {record_key} where the log's records before it have "
                f"{self.key_id}: records from another log or key were spliced in"
            )
        unsigned = unsigned_bytes(raw, record)
        if self.key is not None:
            if record_key is None:
                return (
                    "not keyed, but a key was given: the log was rewritten without the key "
                    "(or written by a writer that had no key)"
                )
            if record_key != self.key.key_id:
                return (
                    f"written with another key (key id {record_key}; yours is "
                    f"{self.key.key_id}): forged, or verified with the wrong key"
                )
            if not hmac.compare_digest(self.key.record_mac(unsigned), record["hash"]):
                return "MAC mismatch: the record was edited (or forged without the key)"
        elif record_key is None and digest(unsigned, None) != record["hash"]:
            return "hash mismatch: the record was edited"
        return None

    def _check_checkpoint(self, record_hash: str) -> str | None:
        checkpoint = self.by_records.get(self.count + 1)
        if checkpoint is None or checkpoint.head == record_hash:
            return None
        return (
            f"does not match the checkpoint of {checkpoint.ts} (checkpoints line "
            f"{checkpoint.line}), which covers {checkpoint.records} record(s) ending here: the "
            "log was replaced or rewritten up to this line"
        )

    def _explain_seq(
        self, record: dict[str, Any], number: int, lines: Iterator[tuple[int, bytes]]
    ) -> str:  # Any: JSON values
        seq, expected = record["seq"], self.count
        if seq > expected:
            for later, raw in lines:  # the rest of the file: is the missing record further on?
                if _seq_of(raw) == expected:
                    return (
                        f"records out of order: seq {seq} where {expected} was expected; "
                        f"seq {expected} comes later, on line {later}"
                    )
            return (
                f"seq {seq} where {expected} was expected: {seq - expected} record(s) deleted "
                "before this line"
            )
        with self.path.open("rb") as handle:  # seq < expected: which earlier line holds it?
            for earlier, raw in _lines(handle, self.size):
                if earlier >= number:
                    break
                if _seq_of(raw) == seq:
                    parsed, _ = parse_line(raw.rstrip(b"\n"))
                    same = parsed is not None and parsed.get("hash") == record["hash"]
                    if same:
                        return f"a duplicate of line {earlier} (seq {seq})"
                    return (
                        f"records out of order: seq {seq} where {expected} was expected; "
                        f"seq {seq} is already on line {earlier}"
                    )
        return f"seq {seq} where {expected} was expected: records reordered or duplicated"

    def _notes(self) -> tuple[str, ...]:
        notes: list[str] = []
        if self.key is None and self.key_id is None:
            notes.append(
                "unkeyed chain (plain SHA-256): it detects accidental damage and careless "
                "edits only. Anyone who can write the file can edit records and recompute the "
                "chain, delete the newest records or append records, and this check passes. "
                f"Key the log: set {KEY_ENV} for its writers and for verify."
            )
        elif self.key is None:
            notes.append(
                f"the records are keyed (key id {self.key_id}) but no key was given: MACs and "
                "checkpoints were not authenticated, only the chain's structure was checked"
            )
        if self.checkpoints and self.key is None:
            notes.append("the checkpoints were read without the key: not authenticated")
        if self.key is not None and self.newest is None and self.count:
            notes.append("no checkpoint: deleting the newest records (truncation) is not detected")
        elif self.newest is not None and self.count > self.newest.records:
            notes.append(
                f"{self.count - self.newest.records} record(s) after the newest checkpoint are "
                "not yet covered: deleting them is not detected until the next checkpoint"
            )
        return tuple(notes)


def _seq_of(raw: bytes) -> object:
    parsed, _ = parse_line(raw.rstrip(b"\n"))
    return None if parsed is None else parsed.get("seq")


def _load_checkpoints(
    path: Path, key: AuditKey | None, *, required: bool
) -> list[Checkpoint] | str:
    """The checkpoints in ``path`` (none when it is absent and not ``required``), or a problem."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return f"checkpoint file {path} not found" if required else []
    except OSError as exc:
        return f"checkpoint file {path} cannot be read ({exc})"
    found: list[Checkpoint] = []
    by_records: dict[int, Checkpoint] = {}
    with handle:
        for number, raw in _lines(handle, _snapshot_size(handle)):
            if not raw.endswith(b"\n"):
                return f"checkpoints {path} line {number}: half-written (no newline)"
            checkpoint, problem = parse_checkpoint(raw[:-1], number, key)
            if checkpoint is None:
                return f"checkpoints {path} line {number}: {problem}"
            other = by_records.get(checkpoint.records)
            if other is not None and other.head != checkpoint.head:
                return (
                    f"checkpoints {path} lines {other.line} and {number} disagree on the head "
                    f"after {checkpoint.records} record(s): one log was replaced by another"
                )
            by_records[checkpoint.records] = checkpoint
            found.append(checkpoint)
    return found


def _snapshot_size(handle: IO[bytes]) -> int:
    """The file's size under a shared flock: writers append whole lines under an exclusive one."""
    fd = handle.fileno()
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        return os.fstat(fd).st_size
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _lines(handle: IO[bytes], size: int) -> Iterator[tuple[int, bytes]]:
    """(1-based number, raw line) for the first ``size`` bytes: streamed, never all in memory."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        if offset >= size:
            return
        if offset + len(raw) > size:
            raw = raw[: size - offset]
        offset += len(raw)
        yield number, raw
