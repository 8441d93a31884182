from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from paxis_router import ChatRequest, Completion, Router
from paxis_router.cli import main
from paxis_router.governance.sandbox import Sandbox, SandboxLimits
from paxis_router.testing import FakeWorker
from paxis_router.verifiers.script import ScriptVerifier

CHECK = textwrap.dedent(
    """
    import json, sys
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        print(json.dumps({"passed": False, "reason": f"not JSON: {exc.msg}"}))
        sys.exit(1)
    missing = [k for k in ("name", "amount") if k not in data]
    if missing:
        print(json.dumps({"passed": False, "score": 0.5, "reason": f"missing {missing}"}))
        sys.exit(1)
    print(json.dumps({"passed": True, "score": 1.0, "reason": "valid invoice"}))
    """
)


@pytest.fixture
def skill(tmp_path: Path) -> Path:
    if not Sandbox().available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap must work in CI (.ci/run installs it)")
        pytest.skip("no working bubblewrap here: apt-get install bubblewrap")
    folder = tmp_path / "invoice-extraction"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "check.py").write_text(CHECK)
    return folder


def answer(text: str) -> Completion:
    return Completion(content=text, model="m")


@pytest.mark.parametrize("via", ["stdin", "file"])
async def test_good_answer_passes_and_bad_one_fails(skill: Path, via: str) -> None:
    verifier = ScriptVerifier(skill, "scripts/check.py", answer_via=via)  # type: ignore[arg-type]
    request = ChatRequest.from_text("extract the invoice")
    good = await verifier.verify(request, answer('{"name": "ACME", "amount": 12.5}'))
    bad = await verifier.verify(request, answer('{"name": "ACME"}'))
    junk = await verifier.verify(request, answer("sure! here it is"))
    assert (good.passed, good.score, good.reason) == (True, 1.0, "valid invoice")
    assert (bad.passed, bad.score, bad.reason) == (False, 0.5, "missing ['amount']")
    assert junk.passed is False
    assert junk.reason.startswith("not JSON")
    assert verifier.name == "script:invoice-extraction/scripts/check.py"


async def test_a_script_that_cannot_run_is_a_failed_verdict(skill: Path) -> None:
    verifier = ScriptVerifier(skill, "scripts/check.py", sandbox=Sandbox(bwrap="/missing/bwrap"))
    verdict = await verifier.verify(ChatRequest.from_text("q"), answer("{}"))
    assert verdict.passed is False
    assert "could not run" in verdict.reason
    assert "install bubblewrap" in verdict.reason


async def test_a_killed_script_fails_the_answer(skill: Path) -> None:
    (skill / "scripts" / "hang.py").write_text("import time\ntime.sleep(30)\n")
    box = Sandbox(SandboxLimits(wall_s=1))
    verdict = await ScriptVerifier(skill, "scripts/hang.py", sandbox=box).verify(
        ChatRequest.from_text("q"), answer("{}")
    )
    assert verdict.passed is False
    assert verdict.reason == "check script killed: wall-clock limit of 1 s reached"


async def test_router_escalates_when_the_skill_script_rejects(skill: Path) -> None:
    router = Router(
        tiers=[
            FakeWorker(['{"name": "ACME"}'], name="local:w"),
            FakeWorker(['{"name": "ACME", "amount": 3}'], name="frontier:f"),
        ],
        verifiers=[ScriptVerifier(skill, "scripts/check.py")],
    )
    result = await router.route(ChatRequest.from_text("extract"))
    assert result.tier == "frontier:f"
    assert "missing ['amount']" in result.attempts[0].reason


def test_cli_sandbox_run_prints_json(skill: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stdin = skill / "in.json"
    stdin.write_text('{"name": "x", "amount": 1}')
    code = main(
        [
            "sandbox",
            "run",
            "--skill",
            str(skill),
            "--stdin",
            str(stdin),
            "--json",
            "scripts/check.py",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["exit_code"] == 0
    assert json.loads(out["stdout"])["reason"] == "valid invoice"
    assert out["killed_by"] is None


def test_cli_refuses_traversal(skill: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sandbox", "run", "--skill", str(skill), "../../etc/passwd"])
    assert code == 2
    assert "contains '..'" in capsys.readouterr().err


async def test_script_kind_builds_from_a_policy_spec(skill: Path) -> None:
    from pydantic import TypeAdapter

    from paxis_router.config.verifiers import VerifierSpec, build_verifier

    spec = TypeAdapter(VerifierSpec).validate_python(
        {"kind": "script", "skill": skill.name, "script": "scripts/check.py", "wall_s": 5}
    )
    verifier = build_verifier(spec, skill.parent)
    verdict = await verifier.verify(ChatRequest.from_text("q"), answer('{"name": 1, "amount": 2}'))
    assert verdict.passed is True
    assert verifier.name == "script:invoice-extraction/scripts/check.py"


async def test_the_bundled_extraction_skill_checks_answers_in_the_sandbox(skill: Path) -> None:
    bundled = Path(__file__).resolve().parents[2] / "skills" / "structured-extraction"
    verifier = ScriptVerifier(bundled, "scripts/check.py", args=["--require", "total"])
    request = ChatRequest.from_text("extract the invoice total")
    good = await verifier.verify(request, answer('{"total": "12.50", "currency": "EUR"}'))
    missing = await verifier.verify(request, answer('{"currency": "EUR"}'))
    prose = await verifier.verify(request, answer("The total is 12.50 EUR."))
    assert (good.passed, good.reason) == (True, "a JSON object with 2 key(s)")
    assert (missing.passed, missing.score, missing.reason) == (
        False,
        0.0,
        "missing required keys: total",
    )
    assert prose.passed is False
    assert prose.reason.startswith("not a JSON document")
