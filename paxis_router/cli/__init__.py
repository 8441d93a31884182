"""``paxis``: the command line. Each command lives in its own module here with a ``register``.

Command modules import heavy dependencies inside their handler, never at module level, so
``paxis --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import TYPE_CHECKING

from paxis_router.errors import PaxisError

if TYPE_CHECKING:
    from collections.abc import Sequence

# One module per command group under paxis_router/cli/, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "route",
    "policy",
    "skills",
    "serve",
    "report",
    "label",
    "calibrate",
    "replay",
    "distill",
    "worker",
    "audit",
    "sandbox",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``paxis`` argument parser with every available command registered."""
    parser = argparse.ArgumentParser(
        prog="paxis",
        description="Route agent subtasks to a cheap worker, escalate only when checks fail.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``paxis`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        status: int = args.handler(args)
    except PaxisError as exc:
        sys.stderr.write(f"paxis {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
