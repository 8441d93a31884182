"""The orchestrator: a task as a loop of routed steps; tool calls run as gated, audited actions."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest

from paxis_router.agent import Agent, function_tool
from paxis_router.errors import ConfigError
from paxis_router.governance.audit import AuditLog
from paxis_router.governance.gate import Gate, parse_gate_policy
from paxis_router.governance.sandbox import Sandbox, SandboxLimits
from paxis_router.policy.predicates import EscalationPolicy, tiers_exhausted, verdict_failed
from paxis_router.pricing import TokenPrice
from paxis_router.router import Router
from paxis_router.skills.library import SkillLibrary
from paxis_router.testing import FakeVerifier, FakeWorker, FunctionWorker
from paxis_router.types import (
    CallRecord,
    ChatRequest,
    Completion,
    Decision,
    FunctionCall,
    ToolCall,
    Usage,
)

ROOT = Path(__file__).resolve().parents[2]
CHEAP = TokenPrice.per_million("0.10", "0.10")
TOP = TokenPrice.per_million("10", "30")


def call(name: str, arguments: object, call_id: str = "c1") -> Completion:
    """A model step that calls one tool."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    tool_call = ToolCall(id=call_id, function=FunctionCall(name=name, arguments=text))
    return Completion("", "m", Usage(10, 5), finish_reason="tool_calls", tool_calls=(tool_call,))


class Sink:
    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def record(self, entry: CallRecord) -> None:
        self.rows.append(entry)


@function_tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
    """The weather in a city.

    Args:
        city: the city's name.
        unit: degrees Celsius (c) or Fahrenheit (f).
    """
    if city == "Atlantis":
        raise LookupError("no such city")
    return {"city": city, "temp": 12 if unit == "c" else 54, "unit": unit}


async def test_a_tool_loop_ends_with_the_answer_and_every_step_is_in_the_ledger() -> None:
    sink = Sink()
    model = FakeWorker(
        [call("get_weather", {"city": "Paris"}), "It is 12C in Paris."],
        name="local:w",
        price=CHEAP,
    )
    agent = Agent(Router(tiers=[model], ledger=sink), tools=[get_weather])
    result = await agent.run("Weather in Paris?", team="travel", metadata={"project": "trips"})

    assert (result.answer, result.stop_reason) == ("It is 12C in Paris.", "answer")
    (run,) = result.tool_runs
    assert (run.name, run.ok, json.loads(run.output)) == (
        "get_weather",
        True,
        {"city": "Paris", "temp": 12, "unit": "c"},
    )
    # the conversation the model saw on its second step: the call, then its result
    second = model.calls[1]
    assert [m.role for m in second.messages] == ["user", "assistant", "tool"]
    assert second.messages[1].tool_calls == call("get_weather", {"city": "Paris"}).tool_calls
    assert second.messages[2].tool_call_id == "c1"
    assert second.tools is not None
    assert second.tools[0].function.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city's name."},
            "unit": {
                "type": "string",
                "enum": ["c", "f"],
                "default": "c",
                "description": "degrees Celsius (c) or Fahrenheit (f).",
            },
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert [(r.task_id, r.step, r.team, dict(r.tags)) for r in sink.rows] == [
        (result.task_id, 0, "travel", {"project": "trips"}),
        (result.task_id, 1, "travel", {"project": "trips"}),
    ]
    assert result.cost_usd == sum((r.cost_usd or Decimal(0) for r in sink.rows), Decimal(0))
    assert result.cost_usd is not None and result.cost_usd > 0


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (call("no_such_tool", {}), "error: no tool named 'no_such_tool' (offered: get_weather)"),
        (call("get_weather", "{not json"), "error: the arguments are not valid JSON"),
        (call("get_weather", {"town": "Paris"}), "error: invalid arguments for get_weather"),
        (call("get_weather", {"city": "Paris", "unit": "k"}), "unit: Input should be 'c' or 'f'"),
        (call("get_weather", {"city": "Atlantis"}), "raised LookupError: no such city"),
    ],
)
async def test_a_bad_call_comes_back_to_the_model_as_the_tools_output(
    step: Completion, expected: str
) -> None:
    # A one-tier ladder that serves its best answer when its checks fail: the tool call runs
    # anyway and whatever went wrong is the model's next message, so it can correct itself.
    model = FakeWorker([step, "sorry"], name="local:w")
    best = EscalationPolicy(verdict_failed(), tiers_exhausted(), on_exhausted="return_best")
    result = await Agent(Router(tiers=[model], policy=best), tools=[get_weather]).run("weather?")
    (run,) = result.tool_runs
    assert not run.ok
    assert expected in run.output
    assert model.calls[1].messages[-1].content == run.output
    assert result.answer == "sorry"


async def test_a_call_the_tool_check_rejects_escalates_to_a_tier_that_calls_right() -> None:
    sink = Sink()
    worker = FakeWorker(
        [call("get_wether", {"city": "Paris"}), "12C in Paris."], name="local:w", price=CHEAP
    )
    frontier = FakeWorker([call("get_weather", {"city": "Paris"})], name="frontier:f", price=TOP)
    agent = Agent(Router(tiers=[worker, frontier], ledger=sink), tools=[get_weather])
    result = await agent.run("Weather in Paris?")
    assert (result.answer, [s.escalated for s in result.steps]) == ("12C in Paris.", [True, False])
    first = sink.rows[0]
    assert (first.tier, first.decision, first.passed) == ("local:w", Decision.ESCALATE, False)
    assert "get_wether" in first.reason and "not among the offered tools" in first.reason


async def test_a_step_whose_check_fails_escalates_and_only_that_step_pays_the_frontier() -> None:
    sink = Sink()
    worker = FakeWorker(
        [call("get_weather", {"city": "Paris"}), "Paris: rain"], name="local:w", price=CHEAP
    )
    frontier = FakeWorker(["It is 12C in Paris."], name="frontier:f", price=TOP)
    # the worker's tool call passes, its final answer fails and goes to the frontier
    router = Router(
        tiers=[worker, frontier], verifiers=[FakeVerifier([True, False, True])], ledger=sink
    )
    result = await Agent(router, tools=[get_weather]).run("Weather in Paris?")
    assert result.answer == "It is 12C in Paris."
    assert [s.escalated for s in result.steps] == [False, True]
    assert result.escalated_steps == 1
    assert [(r.step, r.tier) for r in sink.rows] == [
        (0, "local:w"),
        (1, "local:w"),
        (1, "frontier:f"),
    ]
    assert result.counterfactual_usd is not None and result.cost_usd is not None
    assert result.counterfactual_usd > result.cost_usd


async def test_the_step_limit_stops_a_model_that_never_answers() -> None:
    model = FakeWorker([call("get_weather", {"city": "Paris"})] * 3, name="local:w")
    result = await Agent(Router(tiers=[model]), tools=[get_weather], max_steps=3).run("loop")
    assert (result.stop_reason, result.answer, len(result.steps)) == ("max_steps", None, 3)


async def test_the_budget_stops_the_task_before_the_next_step() -> None:
    expensive = TokenPrice.per_million("1000", "1000")  # 15 tokens: $0.015 a step
    model = FakeWorker([call("get_weather", {"city": "Paris"})] * 5, name="w", price=expensive)
    agent = Agent(Router(tiers=[model]), tools=[get_weather], budget_usd="0.02")
    result = await agent.run("loop")
    assert (result.stop_reason, len(result.steps)) == ("budget", 2)
    assert result.cost_usd == Decimal("0.030")


async def test_the_deadline_cancels_the_step_in_flight_and_records_what_it_spent() -> None:
    sink = Sink()

    async def hang(request: ChatRequest, skill: object) -> str:
        await asyncio.Event().wait()
        return "never"

    router = Router(tiers=[FunctionWorker(hang, name="frontier:f", price=TOP)], ledger=sink)
    result = await Agent(router, deadline_s=0.05).run("think hard")
    assert result.stop_reason == "deadline"
    (row,) = sink.rows
    assert (row.error_type, row.task_id, row.step, row.cost_usd) == (
        "Cancelled",
        result.task_id,
        0,
        None,
    )


async def test_cancelling_a_run_records_the_step_in_flight_then_cancels() -> None:
    sink = Sink()
    started = asyncio.Event()

    async def hang(request: ChatRequest, skill: object) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    agent = Agent(Router(tiers=[FunctionWorker(hang, name="local:w")], ledger=sink))
    task = asyncio.create_task(agent.run("q"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(r.error_type, r.step) for r in sink.rows] == [("Cancelled", 0)]


async def test_the_gate_decides_each_tool_call_and_the_audit_log_has_both(tmp_path: Path) -> None:
    policy = parse_gate_policy(
        {
            "version": "t1",
            "rules": [
                {"id": "tiers", "kinds": ["call_tier"], "effect": "allow"},
                {
                    "id": "no-weather",
                    "kinds": ["use_tool"],
                    "targets": ["get_weather"],
                    "effect": "deny",
                    "reason": "weather is off",
                },
            ],
        }
    )
    audit = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    model = FakeWorker([call("get_weather", {"city": "Paris"}), "no weather"], name="local:w")
    router = Router(tiers=[model], gate=Gate(policy), audit=audit)
    result = await Agent(router, tools=[get_weather]).run("Weather?")
    (run,) = result.tool_runs
    assert run.denied and not run.ok
    assert run.output == "denied by policy (rule no-weather): weather is off"
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    tool_gates = [r for r in records if r["kind"] == "gate" and r["action"] == "use_tool"]
    assert [(r["target"], r["decision"], r["rule_id"]) for r in tool_gates] == [
        ("get_weather", "deny", "no-weather")
    ]


async def test_an_allowed_tool_call_is_audited_with_its_output(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    model = FakeWorker([call("get_weather", {"city": "Paris"}), "12C"], name="local:w")
    result = await Agent(Router(tiers=[model], audit=audit), tools=[get_weather]).run("Weather?")
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    (tool,) = [r for r in records if r["kind"] == "tool"]
    assert (tool["target"], tool["decision"], tool["task_id"], tool["step"]) == (
        "get_weather",
        "ok",
        result.task_id,
        0,
    )
    assert "payload_sha256" in tool


async def test_skills_are_chosen_once_and_pinned_on_every_step() -> None:
    library = SkillLibrary.from_dir(ROOT / "skills")
    model = FakeWorker(["a", "b"], name="local:w")
    sink = Sink()
    router = Router(tiers=[model], skills=library, ledger=sink)
    result = await Agent(router, skills_k=1).run("Summarize these meeting notes as a TL;DR")
    assert result.skills == ("summarization",)
    assert [r.skill for r in sink.rows] == ["summarization"]
    system = model.calls[0].messages[0]
    assert system.role == "system"
    assert system.text.count("## Skill: summarization") == 1


async def test_without_a_router_library_the_agent_renders_its_skills_itself() -> None:
    library = SkillLibrary.from_dir(ROOT / "skills")
    model = FakeWorker(["done"], name="local:w")
    agent = Agent(Router(tiers=[model]), skills=library, skills_k=1, instructions="Be brief.")
    await agent.run("Summarize these meeting notes as a TL;DR")
    system = model.calls[0].messages[0].text
    assert system.startswith("Be brief.\n\nUse these skills where they apply.")
    assert "## Skill: summarization" in system


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(SandboxLimits(wall_s=20, memory_bytes=512 << 20))
    if not box.available():
        if os.environ.get("CI") or os.environ.get("PAXIS_REQUIRE_BWRAP"):
            pytest.fail("bubblewrap must work here (.ci/run installs it)")
        pytest.skip("no working bubblewrap here: apt-get install bubblewrap")
    return box


async def test_a_skill_script_is_a_tool_that_runs_in_the_sandbox(sandbox: Sandbox) -> None:
    library = SkillLibrary.from_dir(ROOT / "skills")
    answer = '{"invoice": "A-1", "total": "12.00"}'
    model = FakeWorker(
        [
            call("structured-extraction__check", {"args": ["--require", "total"], "stdin": answer}),
            answer,
        ],
        name="local:w",
    )
    agent = Agent(Router(tiers=[model], skills=library), skills_k=1, sandbox=sandbox)
    result = await agent.run("Extract the invoice number and total from this invoice as JSON")
    assert result.skills == ("structured-extraction",)
    offered = model.calls[0].tools
    assert offered is not None
    assert [t.name for t in offered] == ["structured-extraction__check"]
    (run,) = result.tool_runs
    output = json.loads(run.output)
    assert (run.ok, output["exit_code"], json.loads(output["stdout"])["passed"]) == (True, 0, True)
    assert result.answer == answer


def test_run_sync_and_configuration_errors() -> None:
    model = FakeWorker(["hi"], name="local:w")
    assert Agent(Router(tiers=[model])).run_sync("hello").answer == "hi"
    with pytest.raises(ConfigError, match="max_steps must be >= 1"):
        Agent(Router(tiers=[model]), max_steps=0)
    with pytest.raises(ConfigError, match="tool names must be unique"):
        Agent(Router(tiers=[model]), tools=[get_weather, get_weather])
