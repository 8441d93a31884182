"""Ledgers: where every attempt is recorded. ``open_ledger`` picks the backend from a URL or path.

Example:
    >>> import tempfile, pathlib
    >>> ledger = open_ledger(pathlib.Path(tempfile.mkdtemp()) / "paxis.db")
    >>> type(ledger).__name__
    'SQLiteLedger'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paxis_router.ledger.buffer import BufferConfig
    from paxis_router.ledger.postgres import PostgresLedger
    from paxis_router.ledger.sqlite import SQLiteLedger

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_SCHEME = "sqlite:///"


def open_ledger(
    url_or_path: str | Path, *, read_only: bool = False, buffer: BufferConfig | None = None
) -> SQLiteLedger | PostgresLedger:
    """Open a ledger: ``postgresql://...`` (or ``postgres://``) for PostgreSQL; a file path or
    ``sqlite:///path`` for SQLite. The PostgreSQL backend needs the ``[postgres]`` extra.

    ``read_only=True`` is for readers (reports, calibration, exports): nothing is created or
    migrated, and anything that is not a paxis ledger of this schema version is refused with a
    LedgerError naming it (and left as it was). ``buffer`` tunes how ``record`` buffers
    (``paxis_router.ledger.buffer.BufferConfig``)."""
    from paxis_router.errors import LedgerError

    text = str(url_or_path)
    if text.startswith(_POSTGRES_SCHEMES):
        try:
            from paxis_router.ledger.postgres import PostgresLedger
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LedgerError(
                f"ledger URL {text.split('@')[-1]!r} needs psycopg: "
                "pip install 'paxis-router[postgres]'"
            ) from exc
        return PostgresLedger(text, read_only=read_only, buffer=buffer)
    if "://" in text and not text.startswith(_SQLITE_SCHEME):
        raise LedgerError(
            f"unsupported ledger URL {text!r}: use a file path, sqlite:///PATH or postgresql://..."
        )
    from paxis_router.ledger.sqlite import SQLiteLedger

    return SQLiteLedger(Path(text.removeprefix(_SQLITE_SCHEME)), read_only=read_only, buffer=buffer)
