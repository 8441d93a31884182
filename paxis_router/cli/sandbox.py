"""``paxis sandbox run`` and ``paxis sandbox info``: run a skill's script in the sandbox, and
say what the sandbox guarantees on this machine, for operators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paxis_router.cli._output import emit, emit_json


def register(sub: argparse._SubParsersAction[Any]) -> None:  # Any: argparse's generic
    parser = sub.add_parser(
        "sandbox",
        help="run skill scripts in the isolated sandbox",
        description="Run a skill's script under bubblewrap, or say what bounds the sandbox here.",
        epilog="examples:\n  paxis sandbox info\n"
        "  paxis sandbox run --skill skills/structured-extraction scripts/check.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run SCRIPT from a skill folder, sandboxed")
    run.add_argument("--skill", required=True, type=Path, help="the skill folder")
    run.add_argument("--stdin", type=Path, help="a file whose content is the script's stdin")
    run.add_argument("--wall-s", type=float, default=30.0, help="wall-clock limit (s)")
    run.add_argument("--cpu-s", type=int, default=10, help="CPU time limit (s)")
    run.add_argument(
        "--memory-mb", type=int, default=1024, help="memory of the whole sandbox, /tmp included"
    )
    run.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    run.add_argument("script", help="the script, relative to the skill folder")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    run.set_defaults(handler=_run)
    info = actions.add_parser("info", help="whether a sandbox works here and what bounds it")
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.set_defaults(handler=_info)


def _run(args: argparse.Namespace) -> int:
    from paxis_router.governance.sandbox import Sandbox, SandboxLimits

    limits = SandboxLimits(wall_s=args.wall_s, cpu_s=args.cpu_s, memory_bytes=args.memory_mb << 20)
    sandbox = Sandbox(limits)
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


def _info(args: argparse.Namespace) -> int:
    from paxis_router.governance.sandbox import Sandbox

    sandbox = Sandbox()
    report = {
        "available": sandbox.available(),
        "unavailable_reason": sandbox.unavailable_reason,
        "memory_guard": sandbox.memory_guard,
        "cgroup_unavailable_reason": sandbox.cgroup_unavailable_reason,
        "run_as": sandbox.run_as,
    }
    if args.json:
        emit_json(report)
    elif sandbox.available():
        guard = sandbox.memory_guard
        emit(f"sandbox: available; memory of the whole sandbox held by {guard}")
        if sandbox.cgroup_unavailable_reason:
            emit(f"no cgroup: {sandbox.cgroup_unavailable_reason}")
        emit(f"scripts run as: {sandbox.run_as}")
    else:
        emit(f"sandbox: NOT available ({sandbox.unavailable_reason}); scripts will not run")
    return 0 if sandbox.available() else 1
