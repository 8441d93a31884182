"""An append-only, tamper-evident audit log (JSON Lines): keyed hash chain, signed checkpoints.

One record per gate decision and per routing decision: who (``principal``), what (``kind``,
``action``, ``target``), when (``ts``, aware UTC), where (``destination``), the ``decision``, the
``rule_id`` and ``policy_version`` behind it, the ``reason``, and ``payload_sha256`` (the SHA-256 of
the payload; the payload itself only when the log is opened with ``include_payload=True``).
Each record carries ``seq`` (0, 1, 2, ...), ``prev`` (the previous record's ``hash``; 64 zeros for
the first) and ``hash``. A line is the record's canonical JSON (sorted keys, no spaces, UTF-8):
any other spelling of it fails verification, so what a reader parses is what was hashed.

**The key.** With a key (``key=``, ``key_file=``, or the ``PAXIS_AUDIT_KEY`` environment variable,
in that order), ``hash`` is the HMAC-SHA256 of the record under the key, and each record names
the key by ``key_id`` (an HMAC of a fixed label: it does not reveal the key). The key is never
written to the log; keep it where the writers and the verifier run, not with the log or its
copies. Then an edited record, a recomputed chain and appended forged records all fail
``paxis audit verify`` (run with the key), because nobody without the key can compute a MAC.
**Without a key** the chain is plain SHA-256 and detects accidental damage and careless edits
only: anyone who can write the file can edit records and recompute every hash, delete the newest
records or append new ones, and ``verify`` still passes. ``verify`` says so when it runs.

**Checkpoints.** A keyed log also writes signed checkpoints ``{records, head, ts, key_id, mac}``
(the log had ``records`` records ending in ``head`` at ``ts``) to ``<log>.checkpoints``: every
``checkpoint_every`` records and on :meth:`AuditLog.close`. ``verify`` reports a log shorter than a
checkpoint as truncated, naming the deleted lines. The records after the newest checkpoint are
not covered. A local checkpoint file can itself be cut back by whoever can cut the log: copy it
(or point ``checkpoints=`` at storage) out of the log writer's reach, as Certificate Transparency
logs gossip their signed tree heads.

**Writing.** :meth:`AuditLog.append` writes the line with one ``write`` (``O_APPEND``) under an
exclusive ``flock`` and returns: the record is then in the kernel and survives the process being
killed (``kill -9``). It does not wait for the disk: a background thread ``fsync``s, one fsync for
every record written since the last, at most one per 10 ms (group commit, as PostgreSQL's WAL
writer; a writer never pays for an fsync on its own thread, and a busy log wakes that thread a
hundred times a second at most, not once per record). So a power loss or OS crash loses at most
the records appended in the last 10 ms plus about two fsync times (milliseconds on a local SSD);
:meth:`~AuditLog.flush` (or ``await aflush()``) returns only when every record appended before
it is on disk, and :meth:`~AuditLog.close` (or ``await aclose()``) flushes, writes a final
checkpoint and releases the file; logs still open at interpreter exit are closed then. An
fsync failure cannot be retried safely (the kernel may have dropped the pages) and is fatal:
``check``, ``flush``, ``close`` and every later ``append`` raise it.

The last record's hash stays in memory; the file is re-read only when another writer has
appended (its size changed under the lock), and then only its last line, read backwards.
Several processes may append to one file. Keep it on a local filesystem: ``flock`` is not
reliable over every network filesystem. An append after a damaged or forged last line raises
AuditError instead of chaining onto it: the damage stays evidence.

**Before a paid call** a caller runs :meth:`AuditLog.check`: it raises AuditError when the log
cannot take records now (its disk is full or nearly, the last append failed, the file was
deleted or replaced, a fatal error), so nothing is paid for that could not be audited.

What :func:`verify` detects, naming the line: an edited record, a forged or recomputed keyed
chain (with the key), records reordered (as a reorder), duplicated or deleted, a half-written
last line, a line that is not canonical JSON (a duplicate key, a BOM, a CRLF, a number or escape
spelled another way), a malformed line (even one nested too deep to parse), and the newest records
deleted when a checkpoint (or a head exported with ``paxis audit head``) covers them.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
    >>> with AuditLog(path, key="k" * 32) as log:
    ...     first = log.append(kind="gate", action="call_tier", decision="allow", rule_id="local")
    >>> result = verify(path, key="k" * 32)
    >>> result.ok, result.records, result.authenticated, result.checkpointed
    (True, 1, True, 1)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from paxis_router._memo import IdentityMemo
from paxis_router.errors import AuditError, ConfigError
from paxis_router.governance._audit_format import (
    GENESIS,
    KEY_ENV,
    AuditKey,
    EncodedFields,
    canonical_json,
    checkpoint_line,
    checkpoints_path,
    digest,
    is_hex64,
    is_int,
    load_line,
    record_hash,
    resolve_key,
    unsigned_bytes,
)
from paxis_router.governance._audit_verify import VerifyResult, head, verify
from paxis_router.types import utc_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from paxis_router.governance.gate import Action, GateDecision
    from paxis_router.types import Attempt, ChatRequest, Message

__all__ = [
    "DEFAULT_AUDIT_PATH",
    "GENESIS",
    "KEY_ENV",
    "AuditKey",
    "AuditLog",
    "VerifyResult",
    "canonical_json",
    "checkpoints_path",
    "head",
    "payload_sha256",
    "record_hash",
    "request_payload",
    "verify",
]

logger = logging.getLogger(__name__)

DEFAULT_AUDIT_PATH = "paxis-audit.jsonl"
"""The one default file name: the bundled policies, ``paxis demo`` and ``paxis audit verify``."""

_TAIL_FIRST_READ = 64 * 1024
_TAIL_MAX_READ = 16 * 1024 * 1024
_SYNCER_IDLE_S = 1.0  # the fsync thread exits after this long without work
_FSYNC_GATHER_S = 0.01  # the fsync thread's pause after each fsync, as records gather
# check() re-reads the free space at most every _ROOMY_RECHECK_S while it is _ROOMY_BYTES above
# min_free_bytes (no burst of records fills that in a quarter second); nearer the floor, each time.
_ROOMY_BYTES = 256 << 20
_ROOMY_RECHECK_S = 0.25
_SPACE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT})


def payload_sha256(payload: str | bytes) -> str:
    """SHA-256 (hex) of a payload (text is hashed as UTF-8)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hashlib.sha256(data).hexdigest()


def request_payload(request: ChatRequest) -> str:
    """The canonical text of what a request sends: its messages as JSON (``json.dumps`` of
    their wire form, no spaces, not ASCII-escaped).

    Each message is encoded once per message object: an agent's earlier messages come back on
    every step, and a skill's instructions are one shared system message
    (``ChatRequest.with_system``). The bytes are those of one ``json.dumps`` of the list.

    Example:
        >>> from paxis_router.types import ChatRequest
        >>> request_payload(ChatRequest.from_text("héllo"))
        '[{"role":"user","content":"héllo"}]'
    """
    return (b"[" + b",".join(map(_message_bytes, request.messages)) + b"]").decode()


_message_bytes: IdentityMemo[Message, bytes] = IdentityMemo(
    lambda m: json.dumps(m.wire(), ensure_ascii=False, separators=(",", ":")).encode()
)
# The SHA-256 state after ``[`` and a request's first message: a system prompt shared by many
# requests (a skill's instructions) is hashed once.
_hashed_opening: IdentityMemo[Message, Any] = IdentityMemo(  # Any: a hashlib object
    lambda m: hashlib.sha256(b"[" + _message_bytes(m))
)


def request_payload_sha256(request: ChatRequest) -> str:
    """``payload_sha256(request_payload(request))``, without building the payload: each
    message's bytes are hashed from memory, and a shared first message is hashed once.

    Example:
        >>> from paxis_router.types import ChatRequest
        >>> request = ChatRequest.from_text("hi").with_system("be brief")
        >>> request_payload_sha256(request) == payload_sha256(request_payload(request))
        True
    """
    messages = request.messages
    if not messages:
        return payload_sha256("[]")
    digest_so_far = _hashed_opening(messages[0]).copy()
    for message in messages[1:]:
        digest_so_far.update(b",")
        digest_so_far.update(_message_bytes(message))
    digest_so_far.update(b"]")
    return str(digest_so_far.hexdigest())


class AuditLog:
    """An append-only, tamper-evident JSONL audit log; see the module docstring.

    Args:
        path: the log file (created with its parent folder when missing).
        include_payload: also store the payload text in each record that has one. Off by default:
            the log then holds hashes only, never prompts or answers.
        fsync: make records durable in the background (group commit; on by default). Off, the
            records reach the kernel only (they survive a killed process, not a power cut).
        key: the HMAC key (an :class:`AuditKey` or its text, at least 32 bytes).
        key_file: a file holding the key, read when ``key`` is not given.
        key_env: the environment variable holding the key, read when neither is given
            (``PAXIS_AUDIT_KEY``; None to ignore the environment). No key: an unkeyed chain.
        checkpoints: where signed checkpoints go (default ``<path>.checkpoints``; keyed logs only).
        checkpoint_every: a checkpoint every this many records (and one on close; 0: on close
            only).
        min_free_bytes: :meth:`check` fails when the log's filesystem has less free space.
        clock: the ``ts`` of records and checkpoints (aware UTC).

    Example:
        >>> import tempfile, pathlib
        >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "a.jsonl", fsync=False)
        >>> log.append(kind="route", action="call_tier", decision="accept")["seq"]
        0
        >>> log.close()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        include_payload: bool = False,
        fsync: bool = True,
        key: AuditKey | bytes | str | None = None,
        key_file: str | Path | None = None,
        key_env: str | None = KEY_ENV,
        checkpoints: str | Path | None = None,
        checkpoint_every: int = 256,
        min_free_bytes: int = 1 << 20,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if checkpoint_every < 0 or min_free_bytes < 0:
            raise ConfigError("checkpoint_every and min_free_bytes must be >= 0")
        self.path = Path(path)
        self.include_payload = include_payload
        self.fsync = fsync
        self.key = resolve_key(key, key_file, key_env)
        self.checkpoints = (
            Path(checkpoints) if checkpoints is not None else checkpoints_path(self.path)
        )
        self.checkpoint_every = checkpoint_every
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._io = threading.Lock()  # the write path: the fd and the tail below
        self._sync_lock = threading.Lock()  # one fsync/checkpoint at a time
        self._cond = threading.Condition()  # wakes the fsync thread
        self._fd: int | None = None
        self._closer: weakref.finalize[[int], AuditLog] | None = None
        self._dev_ino = (0, 0)
        self._size = -1  # bytes of the file as this writer last knew it; -1: unknown
        self._seq, self._hash = -1, GENESIS
        self._written = 0  # records this object wrote
        self._synced = 0  # of those, fsynced
        self._checkpointed = 0  # the record count of this object's last checkpoint
        self._write_error: OSError | None = None
        self._failed_bytes = 0  # the size of the record whose write failed
        self._background_error: AuditError | None = None  # a checkpoint write failed
        self._fatal: AuditError | None = None
        self._syncer: threading.Thread | None = None
        self._stopping = False
        self._sync_idle = False  # the fsync thread waits for records (an append wakes it)
        # submit(): records waiting for the next write (check, append, flush or the end of the
        # event loop's turn); _write_soon: that end-of-turn write is already scheduled.
        self._pending: list[EncodedFields] = []
        self._write_soon = False
        self._roomy_until = 0.0  # check(): the free space need not be read again until then

    def __repr__(self) -> str:
        keyed = f"key_id={self.key.key_id!r}" if self.key is not None else "unkeyed"
        return f"AuditLog({str(self.path)!r}, {keyed})"

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- appending ------------------------------------------------------------------------------

    def append(self, *, payload: str | None = None, **fields: Any) -> dict[str, Any]:  # Any: JSON
        """Append one record built from ``fields`` and return it (with seq, prev and hash).

        Returns once the line is written to the file (not yet fsynced: see :meth:`flush`).
        ``payload`` is hashed into ``payload_sha256`` and stored only with ``include_payload``.
        Raises AuditError when the record cannot be written (the file is left as it was), when
        the file's last line is damaged or forged, or after a fatal error.
        """
        record, encoded = self._prepare(payload, fields)
        if self.key is not None:
            record["key_id"] = self.key.key_id
        with self._io:
            self._raise_if_fatal()
            queued, self._pending, self._write_soon = self._pending, [], False
            try:
                seq, prev, record_digest = self._write_chained([*queued, encoded])
            except AuditError:
                self._pending = queued + self._pending  # queued records wait for the next write
                raise
        record.update(seq=seq, prev=prev, hash=record_digest)
        self._after_write()
        return record

    def submit(self, *, payload: str | None = None, **fields: Any) -> None:  # Any: JSON values
        """Queue one record; it is written (with everything queued in the same turn, in one
        ``write``) before :meth:`check` returns, or at the end of the event loop's current turn,
        whichever comes first. Outside an event loop it is written before ``submit`` returns.

        The router's path: it submits a gate decision, then calls :meth:`check` before paying
        for the call, so the decision is in the file before the call is made (write-ahead), and
        concurrent routes share one write. A ``kill -9`` loses at most the records submitted
        in the event loop's current turn. A queued record that cannot be written stays queued
        (and is written first, in order, by the next write); :meth:`check` raises meanwhile.

        Example:
            >>> import tempfile, pathlib
            >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "a.jsonl", fsync=False)
            >>> log.submit(kind="route", decision="accept")
            >>> log.path.read_text().count("\\n")  # no event loop: written at once
            1
            >>> log.close()
        """
        _, encoded = self._prepare(payload, fields)
        with self._io:
            self._raise_if_fatal()
            self._pending.append(encoded)
            if self._write_soon:
                return
            self._write_soon = True
        _OPEN_LOGS.add(self)  # an exit before the loop's turn ends still writes the queue
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write_pending()
            return
        loop.call_soon(self._write_pending_soon)

    def submit_gate(
        self,
        action: Action,
        decision: GateDecision,
        *,
        request: ChatRequest,
        payload: str | None = None,
        sent: ChatRequest | None = None,
    ) -> None:
        """:meth:`record_gate` through :meth:`submit`. ``sent``: the request that goes out, as
        the payload (:func:`request_payload`); without ``include_payload`` only its hash is
        computed, from each message's remembered bytes."""
        fields = _gate_fields(action, decision, request)
        if sent is not None:
            if self.include_payload:
                payload = request_payload(sent)
            else:
                fields["payload_sha256"] = request_payload_sha256(sent)
        self.submit(**fields, payload=payload)

    def write_pending(self) -> None:
        """Write the queued records now (one ``write``), in the order they were submitted.

        Raises AuditError when they cannot be written; they stay queued.
        """
        with self._io:
            queued, self._pending, self._write_soon = self._pending, [], False
            if not queued:
                return
            try:
                self._raise_if_fatal()
                self._write_chained(queued)
            except AuditError:
                self._pending = queued + self._pending
                raise
        self._after_write()

    def _write_pending_soon(self) -> None:
        """The event loop's end-of-turn write; a failure is logged, kept, raised by check()."""
        try:
            self.write_pending()
        except AuditError as exc:
            logger.error("%s (%d record(s) stay queued)", exc, len(self._pending))

    def _write_chained(self, batch: list[EncodedFields]) -> tuple[int, str, str]:
        """Chain ``batch`` onto the file's last record and write it with one ``write``; return
        the last record's (seq, prev, hash). Caller holds ``_io``."""
        chain: dict[str, str | int] = {}
        if self.key is not None:
            chain["key_id"] = self.key.key_id
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            self._refresh_tail(fd)
            seq, prev = self._seq, self._hash
            record_digest = prev
            lines: list[bytes] = []
            for encoded in batch:
                seq, prev = seq + 1, record_digest
                chain["seq"], chain["prev"] = seq, prev
                chain.pop("hash", None)
                record_digest = digest(encoded.line(chain), self.key)
                chain["hash"] = record_digest
                lines.append(encoded.line(chain) + b"\n")
            data = b"".join(lines)
            self._write_line(fd, data)
            self._size += len(data)
            self._seq, self._hash = seq, record_digest
            self._written += len(batch)
            self._write_error = None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return seq, prev, record_digest

    def record_gate(
        self, action: Action, decision: GateDecision, *, request: ChatRequest, payload: str | None
    ) -> dict[str, Any]:  # Any: JSON
        """Append a gate decision for ``action`` (``payload``: what was, or would be, sent)."""
        return self.append(**_gate_fields(action, decision, request), payload=payload)

    def _prepare(
        self, payload: str | None, fields: dict[str, Any]
    ) -> tuple[dict[str, Any], EncodedFields]:  # Any: JSON
        """The record's fields and their canonical encoding, made outside every lock."""
        record: dict[str, Any] = {k: _jsonable(v) for k, v in fields.items() if v is not None}
        for name in ("seq", "prev", "hash", "key_id"):
            record.pop(name, None)
        record.setdefault("ts", self._clock().isoformat())
        if payload is not None:
            record["payload_sha256"] = payload_sha256(payload)
            if self.include_payload:
                record["payload"] = payload
        try:
            return record, EncodedFields(record)
        except (ValueError, TypeError) as exc:
            raise AuditError(f"{self.path}: a field has no canonical JSON form ({exc})") from exc

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

    # --- health, durability, shutdown -----------------------------------------------------------

    def check(self) -> None:
        """Raise AuditError when the log cannot take records now; cheap, never waits on the disk.

        Call it before each paid call. It opens the file on first use (and checks its last
        record), then costs a few ``stat`` calls: it fails when the file was deleted or replaced,
        its filesystem has less than ``min_free_bytes`` free (read at most every 0.25 s while
        more than 256 MiB above that floor, each time nearer it), the last append failed (until
        space is free again, for a full disk; until an append succeeds, for other errors), a
        checkpoint could not be written, or after a fatal fsync error. Records queued with
        :meth:`submit` are written first.

        Example:
            >>> import tempfile, pathlib
            >>> AuditLog(pathlib.Path(tempfile.mkdtemp()) / "a.jsonl", fsync=False).check()
        """
        self._raise_if_fatal()
        wrote = bool(self._pending)
        if wrote:
            self.write_pending()  # queued decisions land before the call they allow
        with self._io:
            fd = self._open()
            if self._size < 0:  # first use: the last record must be sound to chain onto
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    self._refresh_tail(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            elif not wrote:  # (a write has just checked that the path names the open file)
                self._same_file(fd)
            failed = self._write_error
        if failed is None and time.monotonic() < self._roomy_until:
            free = None  # far above the floor a moment ago: no need to ask again yet
        else:
            free = self._free_bytes()
        if free is not None and free < self.min_free_bytes:
            raise AuditError(
                f"{self.path}: its filesystem has {free} bytes free (less than min_free_bytes "
                f"{self.min_free_bytes}): the disk is full; free space before routing"
            )
        if failed is not None:
            assert free is not None
            if failed.errno in _SPACE_ERRORS and free >= self._failed_bytes:
                with self._io:  # room for the record that failed: appends may succeed again
                    if self._write_error is failed:
                        self._write_error = None
            else:
                raise AuditError(
                    f"{self.path}: the last append failed ({failed.strerror or failed}); "
                    "fix the cause, then restart (or append successfully) to clear this"
                ) from failed
        if self._background_error is not None:
            raise self._background_error

    def _free_bytes(self) -> int:
        """Free bytes on the log's filesystem; remembers when they are plentiful."""
        try:
            vfs = os.statvfs(self.path)  # by path: a concurrent close() may release the fd
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot stat its filesystem ({exc})") from exc
        free = vfs.f_bavail * vfs.f_frsize
        if free >= self.min_free_bytes + _ROOMY_BYTES:
            self._roomy_until = time.monotonic() + _ROOMY_RECHECK_S
        else:
            self._roomy_until = 0.0
        return free

    def flush(self) -> None:
        """Block until every record appended before the call is on disk (fsync), and write a
        checkpoint when one is due. Raises the background writer's error (fsync or checkpoint),
        or AuditError when queued records (:meth:`submit`) cannot be written.
        """
        self._raise_if_fatal()
        self.write_pending()
        with self._sync_lock:
            self._sync_once()
        if self._background_error is not None:
            raise self._background_error

    async def aflush(self) -> None:
        """:meth:`flush` on a worker thread: the event loop keeps running meanwhile."""
        await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Flush, write a final checkpoint (keyed logs) and release the file.

        A later append opens the file again. Raises the background writer's error, if any,
        after releasing the file.
        """
        try:
            self.write_pending()
        except AuditError as exc:  # close anyway; the records stay queued for a later append
            logger.error("%s: %d queued record(s) not written", exc, len(self._pending))
            failed: AuditError | None = exc
        else:
            failed = None
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            syncer = self._syncer
        if syncer is not None and syncer is not threading.current_thread():
            syncer.join()
        try:
            with self._sync_lock:
                if self._fatal is None:
                    self._sync_once(final=True)
        finally:
            with self._io:
                if self._closer is not None:
                    self._closer()  # closes the fd
                self._fd, self._closer, self._size = None, None, -1
            with self._cond:
                self._stopping = False
            if not self._pending:
                _OPEN_LOGS.discard(self)
        self._raise_if_fatal()
        if failed is not None:
            raise failed
        if self._background_error is not None:
            raise self._background_error

    async def aclose(self) -> None:
        """:meth:`close` on a worker thread."""
        await asyncio.to_thread(self.close)

    def checkpoint(self) -> dict[str, Any]:  # Any: JSON
        """Flush and write a signed checkpoint of the log's current tail now; return it.

        Raises AuditError for an unkeyed log (a checkpoint without a key proves nothing).
        Does not verify the records before the tail: run :func:`verify` first when the log
        may have been tampered with (``paxis audit checkpoint`` does).
        """
        if self.key is None:
            raise AuditError(f"{self.path}: checkpoints need a key (set {KEY_ENV})")
        self.check()
        with self._sync_lock:
            self._sync_once()
            with self._io:
                count, last = self._seq + 1, self._hash
            if count == 0:
                raise AuditError(f"{self.path}: an empty log has nothing to checkpoint")
            line = self._write_checkpoint(count, last)
        if self._background_error is not None:
            raise self._background_error
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    # --- internals ------------------------------------------------------------------------------

    def _forget_parent(self) -> None:
        """After a fork, in the child: drop the parent's open file, locks and fsync thread."""
        if self._closer is not None:
            self._closer.detach()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the child's copy only; the parent's stays open
        self._fd, self._closer, self._size = None, None, -1
        self._io, self._sync_lock, self._cond = (
            threading.Lock(),
            threading.Lock(),
            threading.Condition(),
        )
        self._syncer, self._stopping = None, False
        self._written = self._synced = 0
        self._sync_idle = False
        self._pending, self._write_soon = [], False  # the parent writes its own

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _open(self) -> int:
        """The open fd (opened on first use); caller holds ``_io``."""
        if self._fd is not None:
            return self._fd
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot open the audit log ({exc})") from exc
        closer = weakref.finalize(self, os.close, fd)
        closer.atexit = False  # at exit the OS closes it, after _OPEN_LOGS has flushed
        st = os.fstat(fd)
        self._fd, self._closer, self._dev_ino, self._size = fd, closer, (st.st_dev, st.st_ino), -1
        _OPEN_LOGS.add(self)
        if self.key is None:
            logger.info(
                "audit log %s is unkeyed: a rewritten chain would not be detected (set %s)",
                self.path,
                KEY_ENV,
            )
        return fd

    def _same_file(self, fd: int) -> os.stat_result:
        """Raise unless ``path`` still names the open file; return the open file's stat."""
        try:
            named = os.stat(self.path)  # noqa: PTH116 - the hot path: no Path overhead
        except FileNotFoundError:
            raise AuditError(
                f"{self.path}: the audit log was deleted or moved while open; refusing to write "
                "to a file nobody will read. close() the log before moving it (with its "
                "checkpoint file); the next append starts a new file"
            ) from None
        if (named.st_dev, named.st_ino) != self._dev_ino:
            raise AuditError(
                f"{self.path}: the audit log was replaced by another file while open; "
                "close() it and append again to continue in the new file"
            )
        return os.fstat(fd)

    def _refresh_tail(self, fd: int) -> None:
        """Bring ``_seq``/``_hash`` up to date; caller holds ``_io`` and the flock."""
        st = self._same_file(fd)
        if st.st_size == self._size:
            return
        if 0 <= st.st_size < self._size:
            raise AuditError(
                f"{self.path}: the file shrank from {self._size} to {st.st_size} bytes while "
                "open: records were deleted. Refusing to append; run `paxis audit verify`"
            )
        self._seq, self._hash = self._read_tail(fd, st.st_size)
        self._size = st.st_size

    def _read_tail(self, fd: int, size: int) -> tuple[int, str]:
        """(seq, hash) of the last record, checked; (-1, GENESIS) for an empty file."""
        if size == 0:
            return -1, GENESIS
        line = _last_line(fd, size)
        if line is None:
            raise AuditError(
                f"{self.path}: the last line is half-written; refusing to append after a damaged "
                "record. Run `paxis audit verify` and keep the damaged file as evidence."
            )
        record, problem = load_line(line)  # `verify` checks the spelling; the hash, here
        if record is not None and not (is_int(record.get("seq")) and is_hex64(record.get("hash"))):
            record, problem = None, "no integer seq or no hash"
        if record is None:
            raise AuditError(
                f"{self.path}: the last record is not valid audit JSON ({problem}); "
                "run `paxis audit verify`"
            )
        found = record.get("key_id")
        mine = self.key.key_id if self.key is not None else None
        if found != mine:
            was = "without a key" if found is None else f"with key id {found}"
            now = "has no key" if mine is None else f"has key id {mine}"
            raise AuditError(
                f"{self.path}: the log was written {was} and this writer {now}: one log, one "
                f"key. Pass the log's key ({KEY_ENV}), or start a new file"
            )
        if digest(unsigned_bytes(line, record), self.key) != record["hash"]:
            raise AuditError(
                f"{self.path}: the last record's hash does not match its content (edited or "
                "forged); refusing to chain onto it. Run `paxis audit verify`"
            )
        return int(record["seq"]), str(record["hash"])

    def _write_line(self, fd: int, line: bytes) -> None:
        """Write all of ``line`` or nothing: a failed write is cut back off the file."""
        view, done = memoryview(line), 0
        try:
            while done < len(line):
                n = os.write(fd, view[done:])
                if n == 0:
                    raise OSError(errno.EIO, "write() wrote nothing")
                done += n
        except OSError as exc:
            self._write_error, self._failed_bytes = exc, len(line)
            if done:
                try:
                    os.ftruncate(fd, self._size)
                except OSError as cut:
                    self._fatal = AuditError(
                        f"{self.path}: a record was half-written ({exc.strerror}) and could not "
                        f"be cut back ({cut.strerror}): the last line is damaged"
                    )
                    raise self._fatal from exc
            raise AuditError(
                f"{self.path}: could not append a record ({exc.strerror or exc}); nothing was "
                "written, and check() fails until the log can take records again"
            ) from exc

    def _after_write(self) -> None:
        if self.fsync:
            with self._cond:
                if self._syncer is None and not self._stopping:
                    self._syncer = threading.Thread(
                        target=self._sync_loop, name=f"paxis-audit-fsync:{self.path.name}"
                    )
                    self._syncer.daemon = True
                    self._syncer.start()
                elif self._sync_idle:  # a busy fsync thread finds the record on its next round
                    self._cond.notify()
        elif self.key is not None and self._checkpoint_due_for(self._seq + 1):
            with self._sync_lock:  # no fsync to wait for: a checkpoint is one small write
                self._sync_once()

    def _sync_loop(self) -> None:
        """The fsync thread: one fsync per batch of records written since the last."""
        while True:
            with self._cond:
                idle_until = time.monotonic() + _SYNCER_IDLE_S
                while self._written <= self._synced and not self._stopping:
                    left = idle_until - time.monotonic()
                    if left <= 0:
                        self._syncer = None
                        return
                    self._sync_idle = True
                    self._cond.wait(left)
                    self._sync_idle = False
                if self._stopping:
                    self._syncer = None
                    return
            try:
                with self._sync_lock:
                    self._sync_once()
            except AuditError:  # fatal: kept in self._fatal, raised to the callers
                with self._cond:
                    self._syncer = None
                return
            # Group commit: let records gather before the next fsync (at most one per
            # _FSYNC_GATHER_S), so a busy log costs its writers a few wake-ups a second, not one
            # per record. flush() does not wait for this: it fsyncs on its own thread.
            with self._cond:
                if not self._stopping:
                    self._cond.wait(_FSYNC_GATHER_S)

    def _sync_once(self, *, final: bool = False) -> None:
        """fsync what was written; write a checkpoint when due (or ``final``). Holds _sync_lock."""
        with self._io:
            fd, target, count, last = self._fd, self._written, self._seq + 1, self._hash
        if fd is None:
            return
        if self.fsync and target > self._synced:
            try:
                os.fsync(fd)
            except OSError as exc:
                self._fatal = AuditError(
                    f"{self.path}: fsync failed ({exc.strerror or exc}): records written since "
                    "the last fsync may not be on disk, and a retry cannot tell (the kernel may "
                    "have dropped them). The log takes no more records: restart, then run "
                    "`paxis audit verify`"
                )
                raise self._fatal from exc
        with self._cond:
            self._synced = max(self._synced, target)
            self._cond.notify_all()
        if self.key is None or count == 0 or count == self._checkpointed:
            return
        if final or self._checkpoint_due_for(count):
            self._write_checkpoint(count, last)

    def _checkpoint_due_for(self, count: int) -> bool:
        every = self.checkpoint_every
        return bool(every) and count // every > self._checkpointed // every

    def _write_checkpoint(self, count: int, last: str) -> bytes:
        """Append a signed checkpoint; a failure is kept and raised by check/flush/close."""
        assert self.key is not None
        line = checkpoint_line(self.key, count, last, self._clock().isoformat())
        try:
            self.checkpoints.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self.checkpoints, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
            )
        except OSError as exc:
            self._background_error = AuditError(
                f"{self.checkpoints}: cannot open the checkpoint file ({exc})"
            )
            logger.error("%s", self._background_error)
            return line
        start = -1
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                start = os.fstat(fd).st_size
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "short write")
            except OSError as exc:
                if start >= 0:
                    _cut_back(fd, start)
                self._background_error = AuditError(
                    f"{self.checkpoints}: could not write a checkpoint ({exc.strerror or exc})"
                )
                logger.error("%s", self._background_error)
                return line
            if self.fsync:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    self._fatal = AuditError(f"{self.checkpoints}: fsync failed ({exc})")
                    raise self._fatal from exc
            self._checkpointed = max(self._checkpointed, count)
            self._background_error = None
        finally:
            os.close(fd)  # releases the flock
        return line


def _gate_fields(
    action: Action, decision: GateDecision, request: ChatRequest
) -> dict[str, Any]:  # Any: JSON values
    """The fields of a gate record: the action, who asked, and what the gate decided."""
    return {
        "kind": "gate",
        "request_id": request.request_id,
        "principal": action.principal,
        "action": action.kind,
        "target": action.target,
        "model": action.model,
        "skill": action.skill,
        "destination": action.destination,
        "data_class": action.data_class,
        "estimated_cost_usd": action.estimated_cost_usd,
        "decision": decision.effect,
        "rule_id": decision.rule_id,
        "policy_version": decision.policy_version,
        "reason": decision.reason,
        "pii_kinds": list(decision.pii_kinds) or None,
    }


def _cut_back(fd: int, size: int) -> None:
    """Cut a failed partial write off a checkpoint file; a failure here leaves a half-written
    line, which ``verify`` reports."""
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        logger.error("could not cut a half-written checkpoint back: %s", exc)


def _last_line(fd: int, size: int) -> bytes | None:
    """The file's last line without its newline (None when the file does not end in one).

    Reads backwards from the end in doubling blocks: the cost follows the last record's size,
    never the file's, and a multi-megabyte record is read in a handful of ``pread`` calls.
    """
    if os.pread(fd, 1, size - 1) != b"\n":
        return None
    pieces: list[bytes] = []
    pos, step = size - 1, _TAIL_FIRST_READ
    while pos > 0:
        start = max(0, pos - step)
        block = os.pread(fd, pos - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            pieces.append(block[cut + 1 :])
            break
        pieces.append(block)
        pos, step = start, min(step * 2, _TAIL_MAX_READ)
    pieces.reverse()
    return b"".join(pieces)


def _jsonable(value: Any) -> Any:  # Any: JSON values in, JSON values out
    if isinstance(value, (Decimal, PurePath)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _OpenLogs:
    """The logs with an open file, closed (flushed, checkpointed) at interpreter exit."""

    def __init__(self) -> None:
        self._logs: weakref.WeakSet[AuditLog] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._registered = False

    def add(self, log: AuditLog) -> None:
        with self._lock:
            self._logs.add(log)
            if not self._registered:
                atexit.register(self.close_all)
                os.register_at_fork(after_in_child=self.after_fork)
                self._registered = True

    def after_fork(self) -> None:
        """In a forked child: each log opens its own file again (a ``flock`` held through an
        inherited open file would exclude nobody) and starts its own fsync thread."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        for log in list(self._logs):
            log._forget_parent()  # this registry is part of AuditLog

    def discard(self, log: AuditLog) -> None:
        with self._lock:
            self._logs.discard(log)

    def close_all(self) -> None:
        with self._lock:
            logs = list(self._logs)
        for log in logs:
            try:
                log.close()
            except AuditError as exc:  # nobody is left to raise it to
                logger.error("closing audit log at exit: %s", exc)


_OPEN_LOGS = _OpenLogs()
