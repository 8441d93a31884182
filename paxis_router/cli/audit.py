"""``paxis audit verify [FILE]`` and ``paxis audit head FILE``: check and anchor an audit log.

``verify`` exits 0 when the chain holds and 1 naming the first bad line otherwise; with
``--head HASH`` (or ``--head-file FILE``, as written by ``head``) it also detects that the newest
records were deleted. ``head`` prints the hash of the last record, to be kept elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

DEFAULT_FILE = "paxis-demo.audit.jsonl"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="verify a tamper-evident audit log or export its head")
    actions = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    check = actions.add_parser("verify", help="check the hash chain; exit 1 on the first bad line")
    check.add_argument("file", nargs="?", default=DEFAULT_FILE, help=f"default: {DEFAULT_FILE}")
    anchor = check.add_mutually_exclusive_group()
    anchor.add_argument("--head", help="a head hash exported earlier (detects deleted tails)")
    anchor.add_argument("--head-file", type=Path, help="a file holding an exported head hash")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_verify)

    export = actions.add_parser("head", help="print the hash of the last record")
    export.add_argument("file", help="the audit log")
    export.add_argument("--json", action="store_true", help="print {file, records, head}")
    export.set_defaults(handler=_head)


def _verify(args: argparse.Namespace) -> int:
    from paxis_router.cli._output import emit, emit_json
    from paxis_router.errors import ConfigError
    from paxis_router.governance.audit import verify

    path = Path(args.file)
    if not path.is_file():
        raise ConfigError("no such audit log; pass the file to verify", source=str(path))
    expected = args.head
    if args.head_file is not None:
        expected = args.head_file.read_text(encoding="utf-8").strip()
    result = verify(path, expected_head=expected)
    if args.json:
        emit_json(
            {
                "file": str(path),
                "ok": result.ok,
                "records": result.records,
                "head": result.head,
                "bad_line": result.bad_line,
                "error": result.error,
            }
        )
    else:
        emit(f"{path}: {result}")
    return 0 if result.ok else 1


def _head(args: argparse.Namespace) -> int:
    from paxis_router.cli._output import emit, emit_json
    from paxis_router.errors import ConfigError
    from paxis_router.governance.audit import verify

    path = Path(args.file)
    if not path.is_file():
        raise ConfigError("no such audit log", source=str(path))
    result = verify(path)
    if not result.ok:
        emit(f"{path}: {result}; not exporting the head of a broken chain")
        return 1
    if args.json:
        emit_json({"file": str(path), "records": result.records, "head": result.head})
    else:
        emit(result.head)
    return 0
