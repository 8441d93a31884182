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
def skill(tmp_path: Path, bwrap: None) -> Path:
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


def test_cli_sandbox_info_says_what_bounds_the_sandbox(
    skill: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sandbox", "info", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["available"] is True
    assert out["unavailable_reason"] == ""
    assert out["memory_guard"] in ("cgroup v2", "cgroup v1", "rlimit")
    assert (out["memory_guard"] == "rlimit") == bool(out["cgroup_unavailable_reason"])
    assert out["run_as"] in ("a fresh uid per run", "nobody (65534)", f"uid {os.geteuid()} (yours)")


def test_cli_sandbox_run_takes_a_memory_limit(
    skill: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (skill / "scripts" / "hog.py").write_text("block = bytearray(200 << 20)\nprint('held')\n")
    code = main(["sandbox", "run", "--skill", str(skill), "--memory-mb", "96", "scripts/hog.py"])
    out = capsys.readouterr().out
    assert "held" not in out
    assert code != 0


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


ECHO_ENVIRON = textwrap.dedent(
    """
    import json, sys
    answer = sys.stdin.read()
    leaked = open("/proc/1/environ", "rb").read().decode(errors="replace")
    print(json.dumps({"passed": False, "reason": leaked + " | " + answer}))
    sys.exit(1)
    """
)


async def test_a_script_verdict_never_carries_the_parents_secrets(
    skill: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import TypeAdapter

    from paxis_router.config.verifiers import VerifierSpec, build_verifier

    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-parent-0a1b2c3d4e5f6a7b8c9d")
    monkeypatch.setenv("PAXIS_UPSTREAM_TOKEN", "plain words upstream value")
    (skill / "scripts" / "leak.py").write_text(ECHO_ENVIRON)
    spec = TypeAdapter(VerifierSpec).validate_python(
        {"kind": "script", "skill": skill.name, "script": "scripts/leak.py"}
    )
    verifier = build_verifier(spec, skill.parent)
    # The worker's answer itself carries secrets (a prompt-injected model can be made to).
    leaky_answer = (
        "my key is sk-proj-AbCdEf0123456789xyzXYZ and the token is plain words upstream value "
        + "x" * 5000
    )
    verdict = await verifier.verify(ChatRequest.from_text("q"), answer(leaky_answer))
    assert verdict.passed is False
    assert "sk-live-parent" not in verdict.reason  # not in the sandbox at all (/proc/1/environ)
    assert "PATH=/usr/local/bin" in verdict.reason  # what the script could see: its own env
    assert "sk-proj-AbCdEf" not in verdict.reason  # scrubbed: an API-key shape
    assert "plain words upstream value" not in verdict.reason  # scrubbed: a *TOKEN* value
    assert "[REDACTED]" in verdict.reason
    assert len(verdict.reason) <= 500


async def test_the_reason_bound_is_configurable(skill: Path) -> None:
    (skill / "scripts" / "long.py").write_text("print('r' * 10000)\nraise SystemExit(1)\n")
    verifier = ScriptVerifier(skill, "scripts/long.py", max_reason_chars=40)
    verdict = await verifier.verify(ChatRequest.from_text("q"), answer("{}"))
    assert verdict.reason == "r" * 28 + "…[truncated]"


SOVEREIGN = Path(__file__).resolve().parents[2] / "policies" / "sovereign.yaml"


async def test_a_policy_files_gate_and_audit_log_reach_its_script_verifiers(
    skill: Path, tmp_path: Path
) -> None:
    import yaml

    from paxis_router.config.schema import build_router, config_from_mapping
    from paxis_router.errors import EscalationExhausted
    from paxis_router.governance.audit import verify

    (skill / "scripts" / "passes.py").write_text("print('passes')\n")
    audit_path = tmp_path / "audit.jsonl"
    cfg = config_from_mapping(
        {
            "tiers": [
                {
                    "kind": "litellm",
                    "model": "gpt-4o",
                    "name": "local:w",
                    "destination": "local",
                    "completion_kwargs": {
                        "mock_response": '{"name": "x", "amount": 1}',
                        "api_base": "http://127.0.0.1:9/v1",  # on the premises: the gate allows
                    },
                }
            ],
            "verifiers": [{"kind": "script", "skill": skill.name, "script": "scripts/passes.py"}],
            "gate": yaml.safe_load(SOVEREIGN.read_text())["gate"],
            "audit": {"path": str(audit_path), "fsync": False},
        }
    )
    router = build_router(cfg, base_dir=skill.parent)
    with pytest.raises(EscalationExhausted) as raised:
        await router.route(ChatRequest.from_text("extract the invoice"))
    reason = raised.value.attempts[0].reason
    # Had the script run, it would have passed the answer.
    assert (
        "check script could not run: running invoice-extraction/scripts/passes.py denied by "
        "the policy gate: skill 'invoice-extraction' has no allow-list for run_script" in reason
    )
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    scripts = [r for r in records if r["action"] == "run_script"]
    assert [(r["kind"], r["decision"], r["rule_id"]) for r in scripts] == [
        ("sandbox", "deny", "skills.unlisted")
    ]
    assert scripts[0]["policy_version"] == "sovereign-2026-11-28"
    assert verify(audit_path).ok
