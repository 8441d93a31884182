"""The command line as people expect it: --version, help on every option, one metavar style,
plain text (no Sphinx ``markup``) in help, descriptions and examples."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import paxis_router
from paxis_router.cli import build_parser, main

# Every command is held to the rules.
CHECKED = (
    "audit",
    "calibrate",
    "demo",
    "distill",
    "label",
    "policy",
    "replay",
    "report",
    "route",
    "sandbox",
    "serve",
    "skills",
    "worker",
)
_METAVAR = re.compile(r"^[A-Z][A-Z0-9_]*(=[A-Z][A-Z0-9_]*)?(\[,[A-Z]+\.\.\.\])?$")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def help_problems(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """What breaks the house style in one parser and the parsers under it."""
    problems = []
    for text in (parser.description, parser.epilog):
        if text and "``" in text:
            problems.append(f"{path}: Sphinx ``markup`` in the description or epilog")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            problems.append(f"{path} {name}: no help text")
        elif "``" in action.help:
            problems.append(f"{path} {name}: Sphinx ``markup`` in the help text")
        takes_value = action.nargs != 0 and not isinstance(
            action, argparse._StoreTrueAction | argparse._CountAction | argparse._VersionAction
        )
        if takes_value and action.choices is None:
            metavar = action.metavar or (action.dest.upper() if action.option_strings else None)
            if metavar is not None and not _METAVAR.match(str(metavar)):
                problems.append(f"{path} {name}: metavar {metavar!r} is not UPPER_CASE")
    for name, sub in _subparsers(parser).items():
        problems += help_problems(sub, f"{path} {name}")
    return problems


def test_my_commands_follow_the_house_style() -> None:
    parser = build_parser()
    top = [p for p in help_problems(parser, "paxis") if p.startswith("paxis:")]
    assert top == []
    commands = _subparsers(parser)
    problems = [p for name in CHECKED for p in help_problems(commands[name], f"paxis {name}")]
    assert problems == []


def test_the_style_check_catches_what_it_should() -> None:
    parser = argparse.ArgumentParser(prog="x", description="uses ``markup``")
    parser.add_argument("--ledger")
    parser.add_argument("--out", metavar="path", help="where")
    assert help_problems(parser, "x") == [
        "x: Sphinx ``markup`` in the description or epilog",
        "x --ledger: no help text",
        "x --out: metavar 'path' is not UPPER_CASE",
    ]


@pytest.mark.parametrize("command", CHECKED)
def test_each_of_my_commands_shows_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _subparsers(build_parser())[command]
    help_text = parser.format_help()
    if command == "policy":
        help_text = _subparsers(parser)["check"].format_help()
    assert "examples:\n  paxis " in help_text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert (
        out == f"paxis-router {paxis_router.__version__} ({Path(paxis_router.__file__).parent})\n"
    )


def test_version_of_the_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paxis_router", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("paxis-router ")
    assert done.stderr == ""
