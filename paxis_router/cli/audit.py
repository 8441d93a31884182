"""``paxis audit verify|head|checkpoint|keygen``: check, anchor and key an audit log.

``verify`` exits 0 when the log verifies, 1 naming the first bad line (or the truncation)
otherwise, and 2 when it cannot judge: no such file, or a keyed log and no key. The key comes
from ``--key-file`` or the ``PAXIS_AUDIT_KEY`` environment variable; checkpoints from
``--checkpoints`` or ``<FILE>.checkpoints``. With ``--head HASH`` (or ``--head-file``, as written
by ``head``) it also checks that an exported head is still in the log. ``checkpoint`` verifies
the log, then appends a signed checkpoint of its tail and prints it (copy it out of the log
writer's reach). ``keygen`` prints a new random key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paxis_router.governance.audit import AuditKey, VerifyResult

DEFAULT_FILE = "paxis-audit.jsonl"  # == governance.audit.DEFAULT_AUDIT_PATH (tested)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "audit",
        help="verify a tamper-evident audit log, anchor it, key it",
        description="Check the hash-chained audit log, sign checkpoints, make a key.",
        epilog="examples:\n  paxis audit verify\n  paxis audit verify --key-file audit.key\n"
        "  paxis audit keygen > audit.key\n  paxis audit checkpoint --key-file audit.key",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    check = actions.add_parser("verify", help="check the log; exit 1 naming the first bad line")
    check.add_argument("file", nargs="?", default=DEFAULT_FILE, help=f"default: {DEFAULT_FILE}")
    _key_option(check)
    check.add_argument(
        "--checkpoints", type=Path, help="the checkpoint file (default: FILE.checkpoints)"
    )
    anchor = check.add_mutually_exclusive_group()
    anchor.add_argument("--head", help="a head hash exported earlier (detects deleted tails)")
    anchor.add_argument("--head-file", type=Path, help="a file holding an exported head hash")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_verify)

    export = actions.add_parser("head", help="print the hash of the last record")
    export.add_argument("file", help="the audit log")
    _key_option(export)
    export.add_argument("--json", action="store_true", help="print {file, records, head}")
    export.set_defaults(handler=_head)

    sign = actions.add_parser("checkpoint", help="verify, then append a signed checkpoint")
    sign.add_argument("file", help="the audit log")
    _key_option(sign)
    sign.add_argument(
        "--checkpoints", type=Path, help="the checkpoint file (default: FILE.checkpoints)"
    )
    sign.set_defaults(handler=_checkpoint)

    keygen = actions.add_parser("keygen", help="print a new random key (64 hex digits)")
    keygen.set_defaults(handler=_keygen)


def _key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file", type=Path, help="a file holding the log's key (default: $PAXIS_AUDIT_KEY)"
    )


def _key(args: argparse.Namespace) -> AuditKey | None:
    from paxis_router.governance.audit import AuditKey

    if args.key_file is not None:
        return AuditKey.from_file(args.key_file)
    return AuditKey.from_env()


def _existing(args: argparse.Namespace, hint: str) -> Path:
    from paxis_router.errors import ConfigError

    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(hint, source=str(path))
    return path


def _require_key(result: VerifyResult, key: AuditKey | None) -> None:
    from paxis_router.errors import ConfigError

    if key is None and result.ok and result.key_id is not None:
        raise ConfigError(
            f"the log is keyed (key id {result.key_id}): only its structure was checked. Pass "
            "its key (--key-file, or PAXIS_AUDIT_KEY) to verify it"
        )


def _verify(args: argparse.Namespace) -> int:
    from paxis_router.cli._output import emit, emit_json
    from paxis_router.governance.audit import verify

    path = _existing(args, "no such audit log; pass the file to verify")
    key = _key(args)
    expected = args.head
    if args.head_file is not None:
        expected = args.head_file.read_text(encoding="utf-8").strip()
    result = verify(path, key=key, checkpoints=args.checkpoints, expected_head=expected)
    if args.json:
        emit_json(
            {
                "file": str(path),
                "ok": result.ok,
                "records": result.records,
                "head": result.head,
                "bad_line": result.bad_line,
                "error": result.error,
                "authenticated": result.authenticated,
                "key_id": result.key_id,
                "checkpointed": result.checkpointed,
                "notes": list(result.notes),
            }
        )
    else:
        emit(f"{path}: {result}")
        for note in result.notes:
            emit(f"  note: {note}")
    _require_key(result, key)
    return 0 if result.ok else 1


def _head(args: argparse.Namespace) -> int:
    from paxis_router.cli._output import emit, emit_json
    from paxis_router.governance.audit import verify

    path = _existing(args, "no such audit log")
    key = _key(args)
    result = verify(path, key=key)
    if not result.ok:
        emit(f"{path}: {result}; not exporting the head of a broken chain")
        return 1
    _require_key(result, key)
    if args.json:
        emit_json({"file": str(path), "records": result.records, "head": result.head})
    else:
        emit(result.head)
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    import json

    from paxis_router.cli._output import emit
    from paxis_router.errors import ConfigError
    from paxis_router.governance.audit import AuditLog, verify

    path = _existing(args, "no such audit log")
    key = _key(args)
    if key is None:
        raise ConfigError("a checkpoint is signed with the log's key: pass --key-file or set "
                          "PAXIS_AUDIT_KEY")  # fmt: skip
    target: Path | None = args.checkpoints
    result = verify(path, key=key, checkpoints=target if target and target.exists() else None)
    if not result.ok:
        emit(f"{path}: {result}; not signing a checkpoint of a broken log")
        return 1
    with AuditLog(path, key=key, checkpoints=target) as log:
        checkpoint = log.checkpoint()
    emit(json.dumps(checkpoint, sort_keys=True, separators=(",", ":")))
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from paxis_router.cli._output import emit
    from paxis_router.governance.audit import AuditKey

    emit(AuditKey.generate())
    return 0
