"""``paxis route``: the answer, who gave it and what it cost; skills, metadata, exit codes."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.cli import build_parser, main
from paxis_router.cli.route import request_metadata
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.types import ChatRequest


def _route_policy(tmp_path: Path, frontier_answer: str, *, skills: bool = False) -> Path:
    path = tmp_path / "route.yaml"
    skills_line = "skills: {dir: skills}\n" if skills else ""
    path.write_text(
        f"""{skills_line}
tiers:
  - {{kind: litellm, model: gpt-4o-mini, name: "local:cheap",
     completion_kwargs: {{mock_response: "I think 41"}}}}
  - {{kind: litellm, model: gpt-4o, completion_kwargs: {{mock_response: "{frontier_answer}"}}}}
verifiers: [{{kind: regex, must_match: "^\\\\d+$"}}]
policy: {{escalate_when: verdict_failed, stop_when: tiers_exhausted, on_exhausted: return_best}}
ledger: {{path: "{tmp_path / "route.db"}"}}
""",
        encoding="utf-8",
    )
    if skills:
        for name, text in (
            ("arithmetic", "Multiply and add whole numbers; answer with the number only."),
            ("invoices", "Read invoice totals and VAT from PDF invoices."),
        ):
            folder = tmp_path / "skills" / name
            folder.mkdir(parents=True)
            (folder / "SKILL.md").write_text(
                f"---\nname: {name}\ndescription: {text}\n---\n{text}\n", encoding="utf-8"
            )
    return path


def test_route_prints_the_answer_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "42")
    assert main(["route", "--policy", str(policy), "--team", "claims", "--json", "6*7?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["content"], result["tier"], result["accepted"]) == (
        "42",
        "frontier:gpt-4o",
        True,
    )
    assert [a["tier"] for a in result["attempts"]] == ["local:cheap", "frontier:gpt-4o"]
    with SQLiteLedger(tmp_path / "route.db") as ledger:
        rows = ledger.rows()
    assert [(r.tier, r.team) for r in rows] == [
        ("local:cheap", "claims"),
        ("frontier:gpt-4o", "claims"),
    ]
    assert Decimal(result["cost_usd"]) == sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))


def test_route_json_money_is_fixed_point_at_the_ledgers_resolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "42")
    assert main(["route", "--policy", str(policy), "--json", "6*7?"]) == 0
    result = json.loads(capsys.readouterr().out)
    money = [result["cost_usd"], result["counterfactual_usd"]]
    money += [a["cost_usd"] for a in result["attempts"]]
    for value in money:
        assert isinstance(value, str)
        assert "E" not in value.upper()
        assert len(value.split(".")[1]) == 10  # 1e-10 USD: the ledger's ticks
    assert result["usage"] == {
        "prompt_tokens": result["usage"]["prompt_tokens"],
        "completion_tokens": result["usage"]["completion_tokens"],
        "cached_prompt_tokens": 0,
        "reasoning_tokens": 0,
    }


def test_route_skill_metadata_and_data_class_reach_the_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "42", skills=True)
    argv = ["route", "--policy", str(policy), "--json", "--skill", "invoices"]
    argv += ["--metadata", "project=renewals", "--metadata", "team=ignored", "--team", "claims"]
    argv += ["--data-class", "public", "6*7?"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["skills"] == ["invoices"]  # named, not selected (selection would pick arithmetic)
    with SQLiteLedger(tmp_path / "route.db") as ledger:
        rows = ledger.rows()
    assert {(r.team, r.data_class, r.skill) for r in rows} == {("claims", "public", "invoices")}


def test_route_metadata_options_build_the_requests_metadata() -> None:
    parser = build_parser()
    argv = ["route", "--policy", "p.yaml", "--metadata", "project=renewals", "--metadata", "a=b=c"]
    argv += ["--metadata", "team=ignored", "--team", "claims", "--data-class", "public", "hi"]
    args = parser.parse_args(argv)
    metadata = request_metadata(args)
    assert metadata == {"project": "renewals", "a": "b=c", "team": "claims", "data_class": "public"}
    assert ChatRequest.from_text("hi", **metadata).tags == {"project": "renewals", "a": "b=c"}


def test_route_selects_skills_when_none_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "42", skills=True)
    assert main(["route", "--policy", str(policy), "--json", "Multiply 6 by 7"]) == 0
    assert json.loads(capsys.readouterr().out)["skills"][0] == "arithmetic"


def test_route_reads_the_message_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "42")
    monkeypatch.setattr("sys.stdin", io.StringIO("6*7?\n"))
    assert main(["route", "--policy", str(policy), "-"]) == 0
    assert capsys.readouterr().out.startswith("42\n")
    with SQLiteLedger(tmp_path / "route.db") as ledger:
        assert ledger.count() == 2


def test_route_text_output_and_exit_1_when_not_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _route_policy(tmp_path, "forty-two")
    assert main(["route", "--policy", str(policy), "6*7?"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("forty-two\n")
    assert "NOT accepted (best answer) from frontier:gpt-4o after 2 attempt(s)" in out
    cost_line = next(line for line in out.splitlines() if line.startswith("# cost $"))
    assert "E-" not in cost_line
    assert "frontier-only $" in cost_line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metadata", "project"], "--metadata 'project': expected KEY=VALUE"),
        (["--metadata", "=x"], "expected KEY=VALUE"),
        (["--skill", "nope"], "nope"),
    ],
)
def test_route_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    policy = _route_policy(tmp_path, "42", skills=True)
    assert main(["route", "--policy", str(policy), *argv, "6*7?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("paxis route: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\npolicy: {stop_when: maybe}",
            "unknown predicate",
        ),
        ("verifiers: []", "tiers: Field required"),
    ],
)
def test_route_bad_policy_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(text, encoding="utf-8")
    assert main(["route", "--policy", str(policy), "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"paxis route: error: {policy}: ")
    assert message in err
