"""BFCL's multi-turn tasks run by the orchestrator, for ``tools_bench.py``'s agent metrics.

A BFCL ``multi_turn_*`` task is a conversation of user turns over executable environments (a
file system, messaging, posting, tickets, trading, travel booking, vehicle control, maths:
``<data>/envs``, imported from the data folder at run time, never copied here), with the
ground truth of each turn as a list of Python-call strings (``cd(folder='document')``).

What this module does, the way BFCL's own checker does it
(``bfcl_eval/eval_checker/multi_turn_eval``):

- :class:`Environments` instantiates a task's ``involved_classes`` fresh and loads each one's
  ``initial_config`` with ``_load_scenario(deepcopy(config), long_context=False)`` (``MathAPI``
  is stateless: nothing loaded);
- :func:`tools_for` offers the functions of ``multi_turn_func_doc`` (BFCL's schemas, its type
  names mapped by ``FunctionTool(parameters=...)``), minus the task's ``excluded_function``
  (BFCL never shows those to the model), each bound to the method of the same name on the
  task's instances;
- :class:`ScriptedModel` is the model at the seam (wrapped in ``paxis_router.testing``'s
  ``FunctionWorker``): on a user turn it emits that turn's ground-truth calls as parallel tool
  calls in one step (the Agent runs a step's calls one after the other, in order, so a turn's
  ``cd`` still comes before its ``mv``), then, once it has the results, answers in text; a turn
  whose ground truth is empty gets a text answer at once. A ``corrupter`` can spoil calls;
- :func:`run_task` runs the task through a ``Conversation`` (one task id, one ``send`` per
  turn) and executes the ground truth directly on other fresh instances, turn by turn; after
  each turn it compares the instances' public attributes (``vars()``, names not starting with
  ``_``: BFCL's state check) and whether every ground-truth call's result appears among the
  results the agent's calls got so far (BFCL's response check, unordered).

Token counts for pricing are estimated from the text: ``ceil(characters / 4)`` (OpenAI's rule of
thumb for English) of every message (content and tool-call JSON) plus the offered tools' JSON
for the prompt (providers bill tool definitions as input), and of the answer's content and
tool-call JSON for the completion.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import inspect
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from paxis_router.agent import Agent, FunctionTool
from paxis_router.types import ChatRequest, Completion, FunctionCall, ToolCall, Usage

if TYPE_CHECKING:
    from pathlib import Path

    from paxis_router.agent import AgentTool, TaskResult, ToolRun
    from paxis_router.router import Router

Json = Any  # Any: decoded JSON

#: BFCL class -> its module under ``envs/`` and its schema file under ``multi_turn_func_doc/``.
ENV_FILES = {
    "GorillaFileSystem": "gorilla_file_system",
    "MathAPI": "math_api",
    "MessageAPI": "message_api",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
}
STATELESS = frozenset({"MathAPI"})
PACKAGE = "bfcl_envs"  # the name ``<data>/envs`` is imported under (not ``envs``: too common)
ANSWER_TEXT = "Done."
NOTHING_TEXT = "None of the tools can do this."


@dataclass(frozen=True)
class MultiTurnTask:
    """One BFCL multi-turn question with its ground truth."""

    id: str
    turns: tuple[str, ...]
    initial_config: dict[str, Json]
    involved_classes: tuple[str, ...]
    excluded: frozenset[str]
    ground_truth: tuple[tuple[str, ...], ...]


def load_tasks(root: Path, rows: list[Json], category: str) -> list[MultiTurnTask]:
    """The rows of ``BFCL_v4_<category>.json`` with their answers from ``possible_answer``."""
    path = root / "possible_answer" / f"BFCL_v4_{category}.json"
    with path.open(encoding="utf-8") as handle:
        answers = {row["id"]: row["ground_truth"] for row in map(json.loads, handle) if row}
    tasks = []
    for row in rows:
        turns = tuple("\n".join(m["content"] for m in turn) for turn in row["question"])
        truth = tuple(tuple(calls) for calls in answers[row["id"]])
        if len(turns) != len(truth):
            raise ValueError(f"{row['id']}: {len(turns)} turns but {len(truth)} answers")
        tasks.append(
            MultiTurnTask(
                id=row["id"],
                turns=turns,
                initial_config=row.get("initial_config") or {},
                involved_classes=tuple(row["involved_classes"]),
                excluded=frozenset(row.get("excluded_function") or ()),
                ground_truth=truth,
            )
        )
    return tasks


class Environments:
    """BFCL's executable environments, imported from ``<data>/envs`` at run time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if PACKAGE not in sys.modules:
            init = root / "envs" / "__init__.py"
            spec = importlib.util.spec_from_file_location(
                PACKAGE, init, submodule_search_locations=[str(init.parent)]
            )
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import the BFCL environments from {init.parent}")
            package = importlib.util.module_from_spec(spec)
            sys.modules[PACKAGE] = package
            spec.loader.exec_module(package)
        self._docs: dict[str, list[Json]] = {}

    def fresh(self, task: MultiTurnTask) -> dict[str, object]:
        """New instances of the task's classes, each loaded with its initial config."""
        instances: dict[str, object] = {}
        for name in task.involved_classes:
            module = importlib.import_module(f"{PACKAGE}.{ENV_FILES[name]}")
            instance = getattr(module, name)()
            if name not in STATELESS:
                config = copy.deepcopy(task.initial_config.get(name, {}))
                instance._load_scenario(config, long_context=False)
            instances[name] = instance
        return instances

    def docs(self, class_name: str) -> list[Json]:
        """The function schemas of one class (``multi_turn_func_doc``)."""
        if class_name not in self._docs:
            path = self.root / "multi_turn_func_doc" / f"{ENV_FILES[class_name]}.json"
            with path.open(encoding="utf-8") as handle:
                self._docs[class_name] = [json.loads(line) for line in handle if line.strip()]
        return self._docs[class_name]

    def functions(self, task: MultiTurnTask) -> dict[str, Json]:
        """The schemas offered for ``task``: its classes' functions, minus the excluded."""
        return {
            doc["name"]: doc
            for name in task.involved_classes
            for doc in self.docs(name)
            if doc["name"] not in task.excluded
        }


def methods(instances: dict[str, object]) -> dict[str, Callable[..., Any]]:
    """Public method name -> bound method, over the task's instances (BFCL's lookup)."""
    table: dict[str, Callable[..., Any]] = {}
    for instance in instances.values():
        for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
            if not name.startswith("_"):
                table[name] = method
    return table


def tools_for(
    envs: Environments, task: MultiTurnTask, instances: dict[str, object]
) -> list[AgentTool]:
    """The task's tools: BFCL's schema and description, the instance's bound method."""
    table = methods(instances)
    return [
        FunctionTool(
            table[name], name=name, description=doc.get("description"), parameters=doc["parameters"]
        )
        for name, doc in envs.functions(task).items()
    ]


# --- the ground truth ---------------------------------------------------------------------------


def parse_call(text: str, table: dict[str, Callable[..., Any]]) -> tuple[str, dict[str, Json]]:
    """``"mv(source='a', destination='b')"`` -> ``("mv", {"source": "a", ...})``; positional
    arguments named from the method's signature."""
    node = ast.parse(text.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a function call: {text!r}")
    name = node.func.id
    args = [ast.literal_eval(arg) for arg in node.args]
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
    if args:
        bound = inspect.signature(table[name]).bind_partial(*args, **kwargs)
        kwargs = dict(bound.arguments)
    return name, kwargs


def render(result: object) -> str:
    """A result as text, the way ``FunctionTool`` gives it to the model."""
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=str)


def execute(
    table: dict[str, Callable[..., Any]], calls: list[tuple[str, dict[str, Json]]]
) -> list[str]:
    """Run calls directly on the instances (BFCL's ground-truth execution); results as text."""
    out = []
    for name, kwargs in calls:
        try:
            out.append(render(table[name](**copy.deepcopy(kwargs))))
        except Exception as exc:  # the environment's own failure: recorded as BFCL does
            out.append(f"Error during execution: {exc}")
    return out


def state_differences(model: dict[str, object], truth: dict[str, object]) -> dict[str, list[str]]:
    """Per class, the public attributes whose values differ (BFCL's state check)."""
    found: dict[str, list[str]] = {}
    for name, expected in truth.items():
        got = model[name]
        differing = [
            attr
            for attr, value in vars(expected).items()
            if not attr.startswith("_") and getattr(got, attr, None) != value
        ]
        if differing:
            found[name] = differing
    return found


# --- the model at the seam ----------------------------------------------------------------------

#: (turn, the turn's calls as (name, arguments)) -> the calls as (name, arguments JSON text) to
#: send instead, or None to send them as they are
Corrupter = Callable[[int, list[tuple[str, dict[str, Json]]]], list[tuple[str, str]] | None]


def estimate_tokens(text_chars: int) -> int:
    """Tokens for so many characters: ceil(chars / 4), at least 1."""
    return max(1, math.ceil(text_chars / 4))


@dataclass
class ScriptedModel:
    """A model that answers each step of a task from its ground truth (see the module doc).

    ``model_s`` adds up the time spent in this model (the scripted part that stands for the
    model's own time, which the overhead figures leave out).
    """

    calls: list[list[tuple[str, dict[str, Json]]]]
    corrupter: Corrupter | None = None
    model_s: float = 0.0
    _tools_chars: dict[tuple[str, ...], int] = field(default_factory=dict)

    def __call__(self, request: ChatRequest, skill: object) -> Completion:
        t0 = time.perf_counter()
        try:
            return self._answer(request)
        finally:
            self.model_s += time.perf_counter() - t0

    def _answer(self, request: ChatRequest) -> Completion:
        messages = request.messages
        turn = sum(m.role == "user" for m in messages) - 1
        prompt = estimate_tokens(self._prompt_chars(request))
        calls = self.calls[turn] if 0 <= turn < len(self.calls) else []
        if messages[-1].role != "user" or not calls:
            text = ANSWER_TEXT if calls else NOTHING_TEXT
            return Completion(text, "scripted", Usage(prompt, estimate_tokens(len(text))), "stop")
        texts = None if self.corrupter is None else self.corrupter(turn, calls)
        if texts is None:
            texts = [(name, json.dumps(arguments)) for name, arguments in calls]
        tool_calls = tuple(
            ToolCall(id=f"call_{turn}_{i}", function=FunctionCall(name=name, arguments=args))
            for i, (name, args) in enumerate(texts)
        )
        completion_chars = sum(len(name) + len(args) for name, args in texts)
        usage = Usage(prompt, estimate_tokens(completion_chars))
        return Completion("", "scripted", usage, "tool_calls", tool_calls=tool_calls)

    def _prompt_chars(self, request: ChatRequest) -> int:
        chars = 0
        for message in request.messages:
            chars += len(message.text)
            for call in message.tool_calls or ():
                chars += len(call.function.name) + len(call.function.arguments)
        tools = request.tools or ()
        key = tuple(t.function.name for t in tools)
        if key not in self._tools_chars:
            self._tools_chars[key] = len(
                json.dumps([t.model_dump(exclude_none=True) for t in tools])
            )
        return chars + self._tools_chars[key]


def ground_truth_calls(
    task: MultiTurnTask, table: dict[str, Callable[..., Any]]
) -> list[list[tuple[str, dict[str, Json]]]]:
    """Each turn's ground-truth calls, parsed."""
    return [[parse_call(text, table) for text in turn] for turn in task.ground_truth]


# --- one task -----------------------------------------------------------------------------------


@dataclass
class TaskRun:
    """How one task went through the orchestrator, against the ground truth run directly."""

    id: str
    state_match: bool  # the final state (after the last turn) equals the ground truth's
    bfcl_match: bool  # every turn's state and every turn's ground-truth results: BFCL's check
    first_miss: str | None
    results: list[TaskResult]
    steps: int
    escalated_steps: int
    tool_runs: list[ToolRun]
    cost_usd: Decimal | None
    counterfactual_usd: Decimal | None


def _sum(values: list[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += value
    return total


async def run_task(
    envs: Environments,
    task: MultiTurnTask,
    router_for: Callable[[ScriptedModel, ScriptedModel], Router],
    corrupter: Corrupter | None = None,
    max_steps: int = 5,
) -> TaskRun:
    """Run ``task`` through an Agent on fresh instances, and its ground truth on others.

    ``router_for(worker_model, frontier_model)`` builds the ladder from the two scripted
    models (the worker's spoiled by ``corrupter``; a one-tier ladder uses one of them).
    """
    instances = envs.fresh(task)
    truth = envs.fresh(task)
    truth_table = methods(truth)
    calls = ground_truth_calls(task, truth_table)
    worker = ScriptedModel(calls, corrupter)
    frontier = ScriptedModel(calls)
    tools = tools_for(envs, task, instances)
    agent = Agent(router_for(worker, frontier), tools=tools, max_steps=max_steps)
    chat = agent.conversation(metadata={"bfcl_id": task.id})
    results: list[TaskResult] = []
    agent_outputs: list[str] = []
    first_miss: str | None = None
    differences: dict[str, list[str]] = {}
    for turn, text in enumerate(task.turns):
        result = await chat.send(text)
        results.append(result)
        agent_outputs.extend(run.output for run in result.tool_runs)
        expected = execute(truth_table, calls[turn])
        differences = state_differences(instances, truth)
        if first_miss is None and result.stop_reason != "answer":
            first_miss = f"turn {turn}: the agent stopped with {result.stop_reason}: {result.error}"
        if first_miss is None and differences:
            first_miss = f"turn {turn}: state differs: {differences}"
        if first_miss is None:
            missing = _missing(expected, agent_outputs)
            if missing:
                first_miss = f"turn {turn}: ground-truth results missing: {missing[:2]}"
    runs = [run for result in results for run in result.tool_runs]
    return TaskRun(
        id=task.id,
        state_match=not differences,
        bfcl_match=first_miss is None,
        first_miss=first_miss,
        results=results,
        steps=sum(len(r.steps) for r in results),
        escalated_steps=sum(r.escalated_steps for r in results),
        tool_runs=runs,
        cost_usd=_sum([r.cost_usd for r in results]),
        counterfactual_usd=_sum([r.counterfactual_usd for r in results]),
    )


def _missing(expected: list[str], got: list[str]) -> list[str]:
    """The expected results not among ``got`` (each match used once, order free)."""
    pool = list(got)
    missing = []
    for item in expected:
        if item in pool:
            pool.remove(item)
        else:
            missing.append(item)
    return missing
