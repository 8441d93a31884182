"""``paxis sandbox run``: run a skill's script in the sandbox, for operators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paxis_router.cli._output import emit, emit_json


def register(sub: argparse._SubParsersAction[Any]) -> None:  # Any: argparse's generic
    parser = sub.add_parser("sandbox", help="run skill scripts in the isolated sandbox")
    actions = parser.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run SCRIPT from a skill folder, sandboxed")
    run.add_argument("--skill", required=True, type=Path, help="the skill folder")
    run.add_argument("--stdin", type=Path, help="a file whose content is the script's stdin")
    run.add_argument("--wall-s", type=float, default=30.0, help="wall-clock limit (s)")
    run.add_argument("--cpu-s", type=int, default=10, help="CPU time limit (s)")
    run.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    run.add_argument("script", help="the script, relative to the skill folder")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from paxis_router.governance.sandbox import Sandbox, SandboxLimits

    sandbox = Sandbox(SandboxLimits(wall_s=args.wall_s, cpu_s=args.cpu_s))
    stdin = args.stdin.read_bytes() if args.stdin else None
    result = sandbox.run(args.skill, args.script, args.args, stdin=stdin)
    if args.json:
        emit_json(result.to_json())
    else:
        if result.stdout:
            emit(result.stdout.rstrip("\n"))
        emit(f"[{result.reason}; {result.duration_s:.3f} s]")
    if result.killed_by is not None:
        return 124
    return result.exit_code if result.exit_code is not None else 1
