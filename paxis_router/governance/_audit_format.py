"""The audit log's bytes: canonical JSON, record hashes and MACs, keys, checkpoints, strict parsing.

Shared by the writer (:mod:`paxis_router.governance.audit`) and the verifier
(:mod:`paxis_router.governance._audit_verify`). A record line is the canonical JSON of one object
(sorted keys, no whitespace, UTF-8, no NaN/Infinity) and a newline; any other spelling of the
same values fails verification, so what a reader parses is exactly what was hashed.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paxis_router.errors import ConfigError

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

KEY_ENV = "PAXIS_AUDIT_KEY"
"""The environment variable the writer and ``paxis audit verify`` read the key from."""

MIN_KEY_BYTES = 32

_RECORD_DOMAIN = b"paxis-audit/v1 record\n"
_CHECKPOINT_DOMAIN = b"paxis-audit/v1 checkpoint\n"
_KEY_ID_DOMAIN = b"paxis-audit/v1 key id"
_BOM = b"\xef\xbb\xbf"

REQUIRED = ("seq", "ts", "kind", "decision", "prev", "hash")
CHECKPOINT_FIELDS = frozenset({"head", "key_id", "mac", "records", "ts"})


def canonical_json(record: dict[str, Any]) -> bytes:  # Any: JSON values
    """The bytes a record's hash covers: sorted keys, no whitespace, UTF-8, no NaN/Infinity.

    Raises ValueError (or TypeError) for what has no canonical form: NaN, a lone surrogate,
    a value JSON cannot hold.
    """
    return _dumps(record).encode()


_ENCODER = json.JSONEncoder(  # stateless: one instance serves every thread
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _dumps(value: Any) -> str:  # Any: a JSON value
    return _ENCODER.encode(value)


CHAIN_KEYS = ("hash", "key_id", "prev", "seq")
"""The members the writer adds to a record, in sorted order."""


class EncodedFields:
    """A record's own fields encoded once, ready for its chain members to be spliced in.

    The fields are encoded in (at most) five runs of canonical JSON, one per gap between the
    sorted chain keys, so :meth:`line` builds the canonical JSON of the whole record (equal to
    ``canonical_json``) without encoding any value again. Raises ValueError or TypeError for a
    value with no canonical form.
    """

    __slots__ = ("_runs",)

    def __init__(self, fields: dict[str, Any]) -> None:  # Any: JSON values
        gaps: list[dict[str, Any]] = [{} for _ in range(len(CHAIN_KEYS) + 1)]
        for name, value in fields.items():
            gaps[bisect.bisect(CHAIN_KEYS, name)][name] = value
        self._runs = [canonical_json(gap)[1:-1] if gap else b"" for gap in gaps]

    def line(self, chain: dict[str, str | int]) -> bytes:
        """The record's canonical JSON with the ``chain`` members (a subset of CHAIN_KEYS)."""
        pieces: list[bytes] = []
        for run, name in zip(self._runs, CHAIN_KEYS, strict=False):
            if run:
                pieces.append(run)
            if name in chain:
                pieces.append(f'"{name}":{_chain_value(chain[name])}'.encode())
        if self._runs[-1]:
            pieces.append(self._runs[-1])
        return b"{" + b",".join(pieces) + b"}"


def _chain_value(value: str | int) -> str:
    if isinstance(value, int) or (value.isascii() and value.isalnum()):  # seq, hex digests
        return f'"{value}"' if isinstance(value, str) else str(value)
    return _dumps(value)


def digest(unsigned: bytes, key: AuditKey | None) -> str:
    """A record's ``hash``: SHA-256 of its canonical JSON without ``hash``, or with a key, the
    HMAC-SHA256 of it."""
    if key is None:
        return hashlib.sha256(unsigned).hexdigest()
    return key.record_mac(unsigned)


def record_hash(record: dict[str, Any], key: AuditKey | None = None) -> str:  # Any: JSON
    """The ``hash`` a record must carry: see :func:`digest` (the ``hash`` key is left out)."""
    return digest(canonical_json({k: v for k, v in record.items() if k != "hash"}), key)


class AuditKey:
    """An HMAC-SHA256 key for an audit log: kept outside the log, never written to it.

    The log stores only ``key_id``, a 16-hex-digit HMAC of a fixed label, which names the key
    without revealing it. Anyone holding the key can verify the log, and could also forge it:
    keep it where the log's writers and verifiers run, not where the log is stored or shipped.

    Args:
        secret: at least 32 bytes (text is taken as UTF-8); ``paxis audit keygen`` makes one.

    Example:
        >>> key = AuditKey("k" * 32)
        >>> len(key.key_id), "k" * 32 in repr(key)
        (16, False)
    """

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes | str) -> None:
        data = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(data) < MIN_KEY_BYTES:
            raise ConfigError(
                f"an audit key needs at least {MIN_KEY_BYTES} bytes (got {len(data)}); "
                "make one with `paxis audit keygen`"
            )
        self._secret = data
        self.key_id = hmac.new(data, _KEY_ID_DOMAIN, hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    @staticmethod
    def generate() -> str:
        """A new random key: 32 random bytes as 64 hex digits."""
        return secrets.token_hex(32)

    @classmethod
    def from_file(cls, path: str | Path) -> AuditKey:
        """The key held in a file (its text, surrounding whitespace stripped).

        Logs a warning when the file is readable by group or others. Raises ConfigError naming
        the file when it cannot be read or holds too short a key.
        """
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the audit key file ({exc})", source=str(path)) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("audit key file %s is readable by others: chmod 600 it", path)
        try:
            return cls(text)
        except ConfigError as exc:
            raise ConfigError(str(exc), source=str(path)) from None

    @classmethod
    def from_env(cls, name: str = KEY_ENV) -> AuditKey | None:
        """The key in environment variable ``name``; None when it is unset or empty."""
        value = os.environ.get(name, "").strip()
        if not value:
            return None
        try:
            return cls(value)
        except ConfigError as exc:
            raise ConfigError(str(exc), source=f"${name}") from None

    def record_mac(self, unsigned: bytes) -> str:
        """HMAC-SHA256 (hex) of a record's canonical JSON without its ``hash``."""
        mac = hmac.new(self._secret, _RECORD_DOMAIN, hashlib.sha256)
        mac.update(unsigned)
        return mac.hexdigest()

    def checkpoint_mac(self, unsigned: bytes) -> str:
        """HMAC-SHA256 (hex) of a checkpoint's canonical JSON without its ``mac``."""
        return hmac.new(self._secret, _CHECKPOINT_DOMAIN + unsigned, hashlib.sha256).hexdigest()


def resolve_key(
    key: AuditKey | bytes | str | None,
    key_file: str | Path | None = None,
    key_env: str | None = KEY_ENV,
) -> AuditKey | None:
    """The key to use: ``key``, else the one in ``key_file``, else ``$key_env``, else None."""
    if isinstance(key, AuditKey):
        return key
    if key is not None:
        return AuditKey(key)
    if key_file is not None:
        return AuditKey.from_file(key_file)
    if key_env:
        return AuditKey.from_env(key_env)
    return None


def checkpoints_path(log: str | Path) -> Path:
    """Where a log's checkpoints go by default: beside it, ``<log>.checkpoints``."""
    log = Path(log)
    return log.with_name(log.name + ".checkpoints")


def checkpoint_line(key: AuditKey, records: int, head: str, ts: str) -> bytes:
    """One signed checkpoint, as the line to append to a checkpoint file."""
    body = {"head": head, "key_id": key.key_id, "records": records, "ts": ts}
    mac = key.checkpoint_mac(canonical_json(body))
    return canonical_json({**body, "mac": mac}) + b"\n"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint read back: the log had ``records`` records ending in ``head`` at ``ts``."""

    records: int
    head: str
    ts: str
    key_id: str
    line: int


def parse_checkpoint(
    raw: bytes, number: int, key: AuditKey | None
) -> tuple[Checkpoint | None, str | None]:
    """A checkpoint line (without its newline) checked against ``key`` (when given)."""
    obj, problem = parse_line(raw)
    if obj is None:
        return None, problem
    if set(obj) != CHECKPOINT_FIELDS:
        return None, f"not a checkpoint (fields {', '.join(sorted(obj))})"
    records, head, ts, key_id = obj["records"], obj["head"], obj["ts"], obj["key_id"]
    if not (is_int(records) and records > 0 and is_hex64(head)):
        return None, "not a checkpoint (records must be a positive integer, head 64 hex digits)"
    if not (isinstance(ts, str) and isinstance(key_id, str) and isinstance(obj["mac"], str)):
        return None, "not a checkpoint (ts, key_id and mac must be strings)"
    if key is not None:
        if key_id != key.key_id:
            return None, f"signed with another key (key id {key_id}; yours is {key.key_id})"
        body = {k: v for k, v in obj.items() if k != "mac"}
        if not hmac.compare_digest(key.checkpoint_mac(canonical_json(body)), obj["mac"]):
            return None, "MAC mismatch: the checkpoint was forged or edited"
    return Checkpoint(records, head, ts, key_id, number), None


def unsigned_bytes(raw: bytes, record: dict[str, Any]) -> bytes:  # Any: JSON values
    """What a record's ``hash`` covers: its canonical JSON without the ``hash`` member.

    For a canonical ``raw`` line that is ``raw`` with the member ``"hash":"<hex>"`` and one comma
    cut out, with no re-encoding of (possibly megabytes of) values. The member is searched with
    its own value, so finding it nested elsewhere would need a hash that covers itself; when it is
    not found exactly once, the record is encoded again.
    """
    member = b'"hash":"' + str(record.get("hash")).encode() + b'"'
    at = raw.find(member)
    if at < 0 or raw.find(member, at + 1) >= 0:
        return canonical_json({k: v for k, v in record.items() if k != "hash"})
    before, after = raw[:at], raw[at + len(member) :]
    if after.startswith(b","):
        after = after[1:]
    elif before.endswith(b","):
        before = before[:-1]
    return before + after


def load_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:  # Any: JSON values
    """``(object, None)`` when ``raw`` (one line without its newline) parses to a JSON object;
    ``(None, problem)`` otherwise. Never raises (a depth bomb or bad UTF-8 is a problem)."""
    if raw.startswith(_BOM):
        return None, "starts with a byte-order mark: not the canonical bytes that were hashed"
    if raw.endswith(b"\r"):
        return None, "ends with CR (a CRLF line end): not the canonical bytes that were hashed"
    try:
        obj = json.loads(raw)
    except RecursionError:
        return None, "malformed record: JSON nested too deeply to parse"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too-long integers
        return None, f"not valid JSON ({exc}): edited or damaged"
    if not isinstance(obj, dict):
        return None, "not a JSON object: edited or damaged"
    return obj, None


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:  # Any: JSON values
    """``(object, None)`` when ``raw`` (one line without its newline) is a canonical JSON object;
    ``(None, problem)`` otherwise. Never raises: depth bombs, bad UTF-8, duplicate keys and
    non-canonical spellings are problems, not exceptions."""
    obj, problem = load_line(raw)
    if obj is None:
        return None, problem
    try:
        canonical = canonical_json(obj)
    except (ValueError, TypeError, RecursionError):
        return None, "holds a value with no canonical form (NaN, Infinity or a lone surrogate)"
    if canonical != raw:
        return None, _why_not_canonical(raw, canonical)
    return obj, None


def _why_not_canonical(raw: bytes, canonical: bytes) -> str:
    duplicate = _duplicate_key(raw)
    if duplicate is not None:
        return f"duplicate key {duplicate!r}: readers could see either value, only one was hashed"
    at = next((i for i, (a, b) in enumerate(zip(raw, canonical, strict=False)) if a != b), None)
    at = min(len(raw), len(canonical)) if at is None else at
    return (
        f"not in canonical form (differs at byte {at + 1}: key order, spacing, or a number or "
        "escape spelled another way): readers could see other values than what was hashed"
    )


def _duplicate_key(raw: bytes) -> str | None:
    found: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:  # Any: JSON values
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen and not found:
                found.append(k)
            seen.add(k)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)  # it parsed once already
    return found[0] if found else None


def is_int(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_hex64(value: object) -> bool:
    """True for a 64-digit lower-case hex string (a hash or a MAC)."""
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
