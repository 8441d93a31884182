"""The examples in the calibration modules' docstrings run and give what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from paxis_router.calibration import datasets, features, metrics, scorer, thresholds


@pytest.mark.parametrize(
    "module",
    [metrics, datasets, thresholds, features, scorer],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_commands_parse_with_the_real_cli() -> None:
    import re
    import shlex
    from pathlib import Path

    from paxis_router.cli import build_parser

    text = (Path(__file__).resolve().parents[2] / "docs" / "calibration.md").read_text(
        encoding="utf-8"
    )
    start = text.index("\n## Calibration and the routing economics\n")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    commands = [line.split("#")[0] for line in joined.splitlines() if line.startswith("paxis ")]
    assert [shlex.split(c)[1] for c in commands] == ["calibrate", "replay"]
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.handler.__module__ in ("paxis_router.cli.calibrate", "paxis_router.cli.replay")
    # The walk-through replays the rows the policy was not fitted on (issue 17), never its own.
    calibrate = parser.parse_args(shlex.split(commands[0])[1:])
    replay = parser.parse_args(shlex.split(commands[1])[1:])
    assert calibrate.holdout == 0.5
    assert replay.data == [calibrate.output.with_suffix(".holdout.jsonl")]
    assert not replay.allow_in_sample
