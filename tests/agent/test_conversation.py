"""A task over several user turns: one task id, steps numbered on, each turn tagged."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from paxis_router.agent import Agent, function_tool
from paxis_router.pricing import TokenPrice
from paxis_router.router import Router
from paxis_router.skills.library import SkillLibrary
from paxis_router.testing import FakeClock, FakeWorker, FunctionWorker
from paxis_router.types import CallRecord, ChatRequest, Completion, FunctionCall, ToolCall, Usage

ROOT = Path(__file__).resolve().parents[2]
PRICE = TokenPrice.per_million("1000", "1000")  # 15 tokens: $0.015 a step


def call(name: str, arguments: dict[str, object], call_id: str) -> Completion:
    tool_call = ToolCall(
        id=call_id, function=FunctionCall(name=name, arguments=json.dumps(arguments))
    )
    return Completion("", "m", Usage(10, 5), finish_reason="tool_calls", tool_calls=(tool_call,))


def answer(text: str) -> Completion:
    return Completion(text, "m", Usage(10, 5), finish_reason="stop")


class Sink:
    """A ledger sink that keeps the rows the router hands it."""

    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def record(self, entry: CallRecord) -> None:
        self.rows.append(entry)


class Notes:
    """A tiny stateful environment: what the tool calls did is visible afterwards."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> dict[str, int]:
        """Append a line.

        Args:
            line: the text.
        """
        self.lines.append(line)
        return {"lines": len(self.lines)}


async def test_turns_share_the_task_id_and_the_ledger_groups_them_by_turn() -> None:
    notes = Notes()
    model = FakeWorker(
        [
            call("write", {"line": "a"}, "c1"),
            answer("Wrote a."),
            call("write", {"line": "b"}, "c2"),
            answer("Wrote b."),
        ],
        name="local:w",
        price=PRICE,
    )
    ledger = Sink()
    agent = Agent(Router(tiers=[model], ledger=ledger), tools=[function_tool(notes.write)])
    chat = agent.conversation(team="ops", metadata={"project": "notes"})
    assert (chat.task_id, chat.turns, chat.messages) == (None, 0, ())

    first = await chat.send("Write a.")
    second = await chat.send("Now write b.")

    assert notes.lines == ["a", "b"]
    assert (first.answer, first.turn, second.answer, second.turn) == ("Wrote a.", 0, "Wrote b.", 1)
    assert first.task_id == second.task_id == chat.task_id
    assert chat.turns == 2
    # each result holds its own turn's steps (numbered on) and cost; messages are the whole talk
    assert [s.index for s in first.steps] == [0, 1]
    assert [s.index for s in second.steps] == [2, 3]
    assert first.cost_usd == second.cost_usd == Decimal("0.030")
    assert second.messages == chat.messages
    assert [m.role for m in chat.messages] == [
        *("user", "assistant", "tool", "assistant"),
        *("user", "assistant", "tool", "assistant"),
    ]
    # the model saw the first turn when it answered the second
    assert [m.text for m in model.calls[2].messages if m.role == "user"] == [
        "Write a.",
        "Now write b.",
    ]
    rows = ledger.rows
    assert [(r.task_id, r.step, r.tags.get("turn"), r.team) for r in rows] == [
        (first.task_id, 0, "0", "ops"),
        (first.task_id, 1, "0", "ops"),
        (first.task_id, 2, "1", "ops"),
        (first.task_id, 3, "1", "ops"),
    ]
    assert all(r.tags.get("project") == "notes" for r in rows)
    assert sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0)) == Decimal("0.060")


async def test_a_single_run_carries_no_turn_tag() -> None:
    model = FakeWorker(["hi"], name="local:w")
    result = await Agent(Router(tiers=[model])).run("hello")
    assert result.turn == 0
    assert "turn" not in model.calls[0].metadata


async def test_the_budget_counts_every_turn() -> None:
    model = FakeWorker([answer("one"), answer("two")], name="local:w", price=PRICE)
    chat = Agent(Router(tiers=[model]), budget_usd="0.02").conversation()
    assert (await chat.send("first")).stop_reason == "answer"  # $0.015 spent
    assert (await chat.send("second")).stop_reason == "answer"  # $0.030 spent: over budget
    third = await chat.send("third")
    assert (third.stop_reason, third.steps, third.cost_usd) == ("budget", (), Decimal(0))
    assert len(model.calls) == 2


async def test_the_step_limit_and_the_deadline_apply_to_each_turn() -> None:
    clock = FakeClock()

    def slow(request: ChatRequest, skill: object) -> Completion:
        clock.advance(4)  # each model step takes 4 s of the injected clock
        return call("write", {"line": "x"}, f"c{len(request.messages)}")

    notes = Notes()
    agent = Agent(
        Router(tiers=[FunctionWorker(slow, name="local:w")]),
        tools=[function_tool(notes.write)],
        max_steps=3,
        deadline_s=6,
        clock=clock,
    )
    chat = agent.conversation()
    first = await chat.send("go")
    clock.advance(100)  # the user thinks for a while: not the next turn's time
    second = await chat.send("again")
    # turn 1: step 0 (4 s), step 1 (8 s); the deadline (6 s) stops it before a third; turn 2
    # starts its clock and its step count anew (a limit over the whole talk would give it one)
    assert (first.stop_reason, [s.index for s in first.steps]) == ("deadline", [0, 1])
    assert (second.stop_reason, [s.index for s in second.steps]) == ("deadline", [2, 3])
    assert notes.lines == ["x"] * 4


async def test_the_skills_of_the_first_turn_stay_for_the_whole_conversation() -> None:
    library = SkillLibrary.from_dir(ROOT / "skills")
    model = FakeWorker(["a", "b"], name="local:w")
    chat = Agent(Router(tiers=[model], skills=library), skills_k=1).conversation()
    first = await chat.send("Summarize these meeting notes as a TL;DR")
    second = await chat.send("Extract the invoice number and total from this invoice as JSON")
    assert first.skills == second.skills == ("summarization",)
    assert [request.metadata["skill"] for request in model.calls] == ["summarization"] * 2
