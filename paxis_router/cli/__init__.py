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


_EPILOG = """\
start here:
  paxis demo                          replay 1307 real GSM8K answers through the router (offline)
  paxis report                        the cost report of the ledger the demo wrote
  paxis policy check policy.yaml      validate your own policy file
  paxis COMMAND --help                the options of one command, with examples
"""


def version_text() -> str:
    """``paxis-router 0.1.0 (/path/to/paxis_router)``: the version and where it runs from."""
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    import paxis_router

    try:
        number = version("paxis-router")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH, not installed
        number = paxis_router.__version__
    return f"paxis-router {number} ({Path(paxis_router.__file__).parent})"


class _Version(argparse.Action):
    """``--version``: computed only when asked (reading package metadata is not free)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        sys.stdout.write(version_text() + "\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``paxis`` argument parser with every available command registered."""
    parser = argparse.ArgumentParser(
        prog="paxis",
        description="Route agent subtasks to a cheap worker, escalate only when checks fail, "
        "and account for every dollar.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="print the version and where it is installed"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
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
