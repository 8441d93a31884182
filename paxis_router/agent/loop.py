"""The orchestrator: a task as a loop of routed steps whose tool calls run as gated actions.

``Agent.run(task)`` picks the task's skills with BM25 (once), offers the model their
instructions, their scripts as tools and the caller's Python functions as tools, then loops:
each model step goes through the Router's ladder (worker first; the step escalates when its
verifiers fail — the tool-call verifier judges calls against the offered tools), each tool call
passes the gate and lands in the audit log (skill scripts in the bubblewrap sandbox, Python
tools in-process), and the results go back to the model. The loop stops at a final answer, the
step limit, the task budget or the deadline, and says which (``TaskResult.stop_reason``).

Every step is routed with the task id and its step number in the request metadata, so each
ledger row carries them and cost, escalations and latency roll up per task
(``paxis report --by task``). A cancelled run records what its step in flight spent (the router
does) and re-raises the cancellation.

A task that goes on over several user turns is a ``Conversation`` (``agent.conversation()``):
each ``send(text)`` runs the loop on the conversation so far plus the new user message, under
the same task id, with the skills chosen on the first turn; step numbers go on from the previous
turn's and every step's metadata carries its ``turn`` (a ledger tag), so the ledger shows one
task whose rows are grouped by turn.

Only this module knows the order of a task's steps.

Example:
    >>> from paxis_router.router import Router
    >>> from paxis_router.testing import FakeWorker
    >>> from paxis_router.types import Completion, FunctionCall, ToolCall
    >>> call = ToolCall(id="c1", function=FunctionCall(name="add", arguments='{"a": 2, "b": 40}'))
    >>> model = FakeWorker([Completion("", "m", finish_reason="tool_calls", tool_calls=(call,)),
    ...                     "The sum is 42."], name="local:w")
    >>> def add(a: int, b: int) -> int:
    ...     '''Add two numbers.'''
    ...     return a + b
    >>> result = Agent(Router(tiers=[model]), tools=[add]).run_sync("What is 2 + 40?")
    >>> result.answer, result.stop_reason, len(result.steps)
    ('The sum is 42.', 'answer', 2)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from paxis_router.agent.skill_tools import script_tools
from paxis_router.agent.tools import AgentTool, ToolOutput, as_tool
from paxis_router.errors import ConfigError, PaxisError
from paxis_router.governance.gate import Action
from paxis_router.skills.prompt import render_instructions
from paxis_router.types import ChatRequest, Message, new_id
from paxis_router.workers.background_loop import run_sync

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from paxis_router.governance.sandbox import Sandbox
    from paxis_router.router import Router
    from paxis_router.skills.model import Skill, SkillSelector
    from paxis_router.types import RouteResult, Tool, ToolCall

logger = logging.getLogger(__name__)

StopReason = Literal["answer", "max_steps", "budget", "deadline", "error"]


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One tool call of a step: what the model asked, and what came back."""

    call_id: str
    name: str
    arguments: str
    output: str
    ok: bool
    denied: bool = False
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentStep:
    """One model step: its route (tier, escalation, cost) and the tool calls it made."""

    index: int
    route: RouteResult
    tool_runs: tuple[ToolRun, ...] = ()

    @property
    def escalated(self) -> bool:
        return self.route.escalated


@dataclass(frozen=True, slots=True)
class TaskResult:
    """How one task went: the answer (None unless ``stop_reason`` is ``answer``), why the loop
    stopped, every step, the whole conversation, and what it cost.

    ``cost_usd`` sums the steps' routes (None when a price was unknown); ``counterfactual_usd``
    is what the same steps would have cost on the ladder's top tier. In a ``Conversation``,
    ``steps`` and the costs are this ``turn``'s (summing the turns' results counts each step
    once) and ``messages`` is the whole conversation.
    """

    task_id: str
    answer: str | None
    stop_reason: StopReason
    steps: tuple[AgentStep, ...]
    messages: tuple[Message, ...]
    cost_usd: Decimal | None
    counterfactual_usd: Decimal | None
    skills: tuple[str, ...] = ()
    error: str | None = None
    turn: int = 0

    @property
    def escalated_steps(self) -> int:
        return sum(step.escalated for step in self.steps)

    @property
    def tool_runs(self) -> tuple[ToolRun, ...]:
        return tuple(run for step in self.steps for run in step.tool_runs)


@dataclass
class _Task:
    """What one run has gathered so far."""

    task_id: str
    request: ChatRequest  # the template: metadata, sampling parameters
    messages: list[Message]
    tools: dict[str, AgentTool]
    skills: tuple[Skill, ...]
    started: float
    turn: int | None = None  # None: a single run; else the conversation's turn (a ledger tag)
    turn_start: int = 0  # the index in ``steps`` of this turn's first step
    definitions: tuple[Tool, ...] | None = None  # the tools as offered, built on the first step
    steps: list[AgentStep] = field(default_factory=list)
    spent_usd: Decimal = Decimal(0)  # the whole task's known cost (the budget counts it)

    def add(self, step: AgentStep) -> None:
        self.steps.append(step)
        if step.route.cost_usd is not None:
            self.spent_usd += step.route.cost_usd

    def next_turn(self, text: str, started: float) -> None:
        """A new user message: the next turn starts here (deadline and step limit anew)."""
        self.messages.append(Message(role="user", content=text))
        self.turn = 0 if self.turn is None else self.turn + 1
        self.turn_start = len(self.steps)
        self.started = started

    def turn_costs(self) -> tuple[Decimal | None, Decimal | None]:
        """This turn's cost and counterfactual (None when one of its steps' is unknown)."""
        routes = [step.route for step in self.steps[self.turn_start :]]
        costs = [r.cost_usd for r in routes]
        counterfactuals = [r.counterfactual_usd for r in routes]
        return _sum_or_none(costs), _sum_or_none(counterfactuals)


def _sum_or_none(values: list[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += value
    return total


class Agent:
    """Runs tasks: skills chosen once, model steps routed up the ladder, tool calls gated.

    Args:
        router: routes every model step (its tiers, verifiers, policy, ledger, gate, audit).
        tools: Python functions (or ``FunctionTool``/any ``AgentTool``) offered to the model.
        skills: the skill library to choose from (default: the router's); the chosen skills'
            instructions go in the system prompt and their scripts become tools.
        skills_k: how many skills to choose for a task.
        instructions: the agent's own system prompt, before the skills'.
        max_steps: model steps at most (a step is one route; its tool calls run after it).
        budget_usd: stop before a step once the task has spent this much (a step in flight
            finishes: the overrun is at most one step's cost).
        deadline_s: stop once the task has run this long; a step in flight is cancelled and
            what it spent is recorded.
        sandbox: where skill scripts run (default: one made on first use with the router's gate
            and audit log).
        max_tool_output_chars: a tool's output is cut to this many characters for the model.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        router: Router,
        *,
        tools: Sequence[AgentTool | Callable[..., Any]] = (),
        skills: SkillSelector | None = None,
        skills_k: int = 3,
        instructions: str = "",
        max_steps: int = 10,
        budget_usd: Decimal | str | None = None,
        deadline_s: float | None = None,
        sandbox: Sandbox | None = None,
        max_tool_output_chars: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {max_steps}")
        self.router = router
        self.tools: tuple[AgentTool, ...] = tuple(as_tool(t) for t in tools)
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ConfigError(f"tool names must be unique, got {names}")
        self.skills = skills if skills is not None else router.skills
        self.skills_k = skills_k
        self.instructions = instructions
        self.max_steps = max_steps
        self.budget_usd = None if budget_usd is None else Decimal(budget_usd)
        self.deadline_s = deadline_s
        self._sandbox = sandbox
        self.max_tool_output_chars = max_tool_output_chars
        self._clock = clock

    # --- public API ---------------------------------------------------------------------------

    async def run(
        self,
        task: str,
        *,
        team: str | None = None,
        data_class: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> TaskResult:
        """Run one task to a final answer, the step limit, the budget or the deadline."""
        state = self._start(task, team=team, data_class=data_class, metadata=metadata or {})
        return await self._loop(state)

    def run_sync(self, task: str, **options: Any) -> TaskResult:  # Any: run()'s keywords
        """``run`` for synchronous callers (on the shared background loop, like
        ``Router.route_sync``)."""
        return run_sync(self.run(task, **options))

    def conversation(
        self,
        *,
        team: str | None = None,
        data_class: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Conversation:
        """A task over several user turns (see ``Conversation``)."""
        return Conversation(self, team=team, data_class=data_class, metadata=metadata)

    # --- steps --------------------------------------------------------------------------------

    async def _loop(self, state: _Task) -> TaskResult:
        """Steps until an answer, the step limit, the budget or the deadline (this turn's)."""
        first = len(state.steps)
        for index in range(first, first + self.max_steps):
            stop = self._should_stop(state)
            if stop is not None:
                return self._result(state, stop)
            try:
                route = await self._step(state, index)
            except TimeoutError:
                return self._result(state, "deadline")
            except PaxisError as exc:
                logger.warning("task %s: step %d failed: %s", state.task_id, index, exc)
                return self._result(state, "error", error=f"{type(exc).__name__}: {exc}")
            calls = route.completion.tool_calls
            state.messages.append(
                Message(
                    role="assistant",
                    content=route.content or (None if calls else ""),
                    tool_calls=calls or None,
                )
            )
            if not calls:
                state.add(AgentStep(index, route))
                return self._result(state, "answer", answer=route.content)
            runs = []
            for call in calls:
                run = await self._run_tool(state, index, call)
                runs.append(run)
                state.messages.append(
                    Message(role="tool", tool_call_id=call.id, content=run.output)
                )
            state.add(AgentStep(index, route, tuple(runs)))
        return self._result(state, "max_steps")

    def _start(
        self,
        task: str,
        *,
        team: str | None,
        data_class: str | None,
        metadata: Mapping[str, str],
        turn: int | None = None,
    ) -> _Task:
        chosen: tuple[Skill, ...] = ()
        if self.skills is not None:
            chosen = tuple(m.skill for m in self.skills.select(task, k=self.skills_k))
        tools: dict[str, AgentTool] = {t.name: t for t in self.tools}
        for script in script_tools(chosen, self._sandbox_for_scripts):
            tools.setdefault(script.name, script)
        meta = dict(metadata)
        if team is not None:
            meta["team"] = team
        if data_class is not None:
            meta["data_class"] = data_class
        task_id = new_id()
        meta["task_id"] = task_id
        messages: list[Message] = []
        router_renders = chosen and self.router.skills is not None
        if router_renders:
            meta["skill"] = ",".join(s.id for s in chosen)  # the router renders them per step
        system = "\n\n".join(
            p
            for p in (self.instructions, "" if router_renders else render_instructions(chosen))
            if p
        )
        if system:
            messages.append(Message(role="system", content=system))
        messages.append(Message(role="user", content=task))
        template = ChatRequest(messages=tuple(messages), metadata=meta)
        return _Task(task_id, template, messages, tools, chosen, self._clock(), turn=turn)

    def _should_stop(self, state: _Task) -> StopReason | None:
        if self.deadline_s is not None and self._clock() - state.started >= self.deadline_s:
            return "deadline"
        if self.budget_usd is not None and state.spent_usd >= self.budget_usd:
            return "budget"
        return None

    async def _step(self, state: _Task, index: int) -> RouteResult:
        if state.definitions is None:  # the tools do not change during a task: built once
            state.definitions = tuple(t.definition() for t in state.tools.values())
        request = state.request.model_copy(
            update={
                "messages": tuple(state.messages),
                "tools": state.definitions or None,
                "metadata": self._step_metadata(state, index),
                "request_id": new_id(),
            }
        )
        if self.deadline_s is None:
            return await self.router.route(request)
        remaining = self.deadline_s - (self._clock() - state.started)
        async with asyncio.timeout(max(remaining, 0.0)):
            return await self.router.route(request)

    @staticmethod
    def _step_metadata(state: _Task, index: int) -> dict[str, str]:
        meta = {**state.request.metadata, "step": str(index)}
        if state.turn is not None:
            meta["turn"] = str(state.turn)
        return meta

    async def _run_tool(self, state: _Task, index: int, call: ToolCall) -> ToolRun:
        tool = state.tools.get(call.name)
        if tool is None:
            offered = ", ".join(state.tools) or "none"
            output = ToolOutput(f"error: no tool named {call.name!r} (offered: {offered})", False)
            return self._tool_run(call, output, 0.0)
        if not hasattr(tool, "skill"):  # a skill script asks the gate itself, in the sandbox
            denied = self._gate_tool(state, index, call)
            if denied is not None:
                return self._tool_run(call, ToolOutput(denied, ok=False), 0.0, denied=True)
        t0 = self._clock()
        output = await tool.call(call.arguments)
        run = self._tool_run(call, output, self._clock() - t0)
        self._audit_tool(state, index, run)
        return run

    def _gate_tool(self, state: _Task, index: int, call: ToolCall) -> str | None:
        """Ask the gate about running a Python tool; the reason when it says no."""
        gate, audit = self.router.gate, self.router.audit
        if gate is None:
            return None
        request = state.request
        action = Action(
            kind="use_tool",
            target=call.name,
            destination="local",
            principal=request.team,
            data_class=request.data_class,
        )
        decision = gate.check(action, call.arguments)
        if audit is not None:
            audit.submit_gate(action, decision, request=request, payload=call.arguments)
            if decision.allowed:
                audit.check()  # the decision is on file before the tool runs (or AuditError)
        if decision.allowed:
            return None
        return f"denied by policy (rule {decision.rule_id}): {decision.reason}"

    def _audit_tool(self, state: _Task, index: int, run: ToolRun) -> None:
        audit = self.router.audit
        if audit is None:
            return
        audit.submit(
            kind="tool",
            request_id=state.request.request_id,
            task_id=state.task_id,
            step=index,
            principal=state.request.team,
            action="use_tool",
            target=run.name,
            decision="ok" if run.ok else "error",
            duration_s=round(run.duration_s, 6),
            payload=run.output,
        )

    def _tool_run(
        self, call: ToolCall, output: ToolOutput, duration_s: float, *, denied: bool = False
    ) -> ToolRun:
        text = output.text
        if len(text) > self.max_tool_output_chars:
            cut = self.max_tool_output_chars
            text = f"{text[:cut]}\n[... {len(output.text) - cut} more characters cut]"
        return ToolRun(call.id, call.name, call.arguments, text, output.ok, denied, duration_s)

    def _sandbox_for_scripts(self) -> Sandbox:
        if self._sandbox is None:
            from paxis_router.governance.sandbox import Sandbox

            self._sandbox = Sandbox(gate=self.router.gate, audit=self.router.audit)
        return self._sandbox

    def _result(
        self,
        state: _Task,
        stop: StopReason,
        *,
        answer: str | None = None,
        error: str | None = None,
    ) -> TaskResult:
        cost, counterfactual = state.turn_costs()
        return TaskResult(
            task_id=state.task_id,
            answer=answer,
            stop_reason=stop,
            steps=tuple(state.steps[state.turn_start :]),
            messages=tuple(state.messages),
            cost_usd=cost,
            counterfactual_usd=counterfactual,
            skills=tuple(s.id for s in state.skills),
            error=error,
            turn=state.turn or 0,
        )


class Conversation:
    """One task over several user turns: each ``send`` runs the agent's loop on the
    conversation so far plus the new user message (made by ``Agent.conversation()``).

    The whole conversation is one task: one task id, the skills chosen on the first turn (their
    instructions and scripts stay), step numbers that go on from turn to turn, and the budget
    (``budget_usd``) counted over all turns; the step limit and the deadline apply to each turn.
    Every step's request metadata carries ``turn`` (0, 1, ...): a ledger tag beside the task id
    and the step. Each ``send`` returns that turn's ``TaskResult`` (its steps and cost; the
    messages of the whole conversation). One turn at a time: ``send`` is not reentrant.

    Example:
        >>> from paxis_router.router import Router
        >>> from paxis_router.testing import FakeWorker
        >>> model = FakeWorker(["Hi Ann.", "Your name is Ann."])
        >>> chat = Agent(Router(tiers=[model])).conversation()
        >>> first = chat.send_sync("I am Ann.")
        >>> second = chat.send_sync("Who am I?")
        >>> second.answer, second.turn, second.task_id == first.task_id
        ('Your name is Ann.', 1, True)
        >>> [m.role for m in chat.messages]
        ['user', 'assistant', 'user', 'assistant']
    """

    def __init__(
        self,
        agent: Agent,
        *,
        team: str | None = None,
        data_class: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.agent = agent
        self._team = team
        self._data_class = data_class
        self._metadata = dict(metadata or {})
        self._state: _Task | None = None

    @property
    def task_id(self) -> str | None:
        """The task's id (None before the first turn)."""
        return None if self._state is None else self._state.task_id

    @property
    def messages(self) -> tuple[Message, ...]:
        """The conversation so far (system prompt, user turns, answers, tool calls, results)."""
        return () if self._state is None else tuple(self._state.messages)

    @property
    def turns(self) -> int:
        """How many user turns were sent."""
        return 0 if self._state is None or self._state.turn is None else self._state.turn + 1

    async def send(self, text: str) -> TaskResult:
        """The next user turn, run to an answer, the step limit, the budget or the deadline."""
        agent = self.agent
        if self._state is None:
            self._state = agent._start(
                text,
                team=self._team,
                data_class=self._data_class,
                metadata=self._metadata,
                turn=0,
            )
        else:
            self._state.next_turn(text, agent._clock())
        return await agent._loop(self._state)

    def send_sync(self, text: str) -> TaskResult:
        """``send`` for synchronous callers (on the shared background loop)."""
        return run_sync(self.send(text))
