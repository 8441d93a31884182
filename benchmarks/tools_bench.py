"""How well the tool-call verifier accepts right calls and catches wrong ones, on BFCL v4.

Data: the Berkeley Function Calling Leaderboard v4 (``--data``, default ``../shared/data/bfcl``
beside the repository; see its SOURCE.md): per question, the chat messages, the functions
offered (with BFCL's own type names: ``dict``, ``float``, ``tuple``, ``any``...) and, for the
single-turn categories with answers, the ground truth: per call, per argument, the list of
acceptable values (``""`` in the list: the argument may be left out).

Metrics (one function each, registered in :data:`METRICS`):

``gt_accept_rate``
    Every ground-truth answer of every single-turn category with answers becomes a completion
    whose tool calls take each argument's first acceptable value (``""`` first: the optional
    argument is left out, BFCL's own first choice). Share that ``ToolCallVerifier`` accepts;
    each rejection is classed (``gt_rejections``) with examples.
``corrupt_detect_rate``
    The same ground-truth calls corrupted the ways small models fail, one corruption of each
    kind per answer where it applies (seeded): ``wrong_function`` (another function offered in
    the same question), ``missing_required``, ``wrong_type``, ``invented_argument``,
    ``malformed_json``, ``enum_violation``, ``call_on_irrelevance`` (a schema-valid call on a
    question from the irrelevance categories, judged with the caller's relevance check:
    the dataset says nothing offered is relevant), and ``wrong_value`` (another value of the
    right type: no schema can catch it; reported, not hidden). A ``wrong_function`` whose
    arguments also fit the function it now names (a sibling with the same signature, e.g.
    ``kinematics.final_velocity`` for ``kinematics.distance``) is just as invisible to a
    schema: counted in ``arguments_fit_the_named_function``, beside the rate on the others.
    ``corrupt_detect_rate`` pools every kind; ``corrupt_detect_rate_schema_catchable`` the
    kinds a schema (or the relevance check) can catch; ``corrupt_detect_rate_by_kind`` has each
    kind's count and rate, and
    ``call_on_irrelevance_schema_only`` the same irrelevance calls judged without the relevance
    check (what the schema alone can say: nothing).

The orchestrator's metrics, on ``multi_turn_base`` (``--category``) with BFCL's executable
environments (``<data>/envs``, imported from the data folder; see ``bfcl_agent.py`` for how a
task runs: one ``Conversation`` per task, one ``send`` per user turn, a scripted model at the
seam that emits each turn's ground-truth calls as parallel tool calls in one step, the
environments' methods as tools with BFCL's schemas):

``multi_turn_state_match``
    Share of tasks whose final environment state (BFCL's check: the instances' public
    attributes) equals the state the ground truth reaches run directly on other fresh
    instances; ``multi_turn_bfcl_check`` also asks BFCL's per-turn rule (every turn's state, and
    every ground-truth result among the agent's results so far). Each miss is listed with the
    turn and the reason.
``escalation_demo``
    The same tasks on a two-tier ladder: a worker that spoils ``--corrupt-share`` of its calls
    (seeded; the kinds of ``corrupt_detect_rate`` above, ``call_on_irrelevance`` aside) and a
    frontier that does not; the router's tool-call check escalates a step whose calls fail
    their schemas. Task success for worker-only (its answers served even when the check fails:
    nobody to escalate to), frontier-only and routed; the share of steps escalated; cost routed
    vs frontier-only (worker: a local GPU tier, $2.49/GPU-hour at 2,500 tokens/s, as
    ``policies/default.yaml``; frontier: gpt-4o from the shipped price map; tokens estimated
    from the text, see ``bfcl_agent.py``); per corruption kind, how often its step was caught
    and how the tasks with an uncaught one fared.
``agent_step_overhead``
    The orchestrator's own time per step on these tasks (routing under ``policies/default.yaml``
    with SQLite ledger, audit log and gate, the tool-call check, the gate and audit of each
    tool call, the tool's argument validation and thread hop), the model's and the
    environments' own time taken out, against one ``litellm.completion(mock_response=...)`` in
    the same run (target: < 0.2).

Run: ``.venv/bin/python benchmarks/tools_bench.py --json [--data DIR] [--limit N] [--seed S]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.agent import Agent, FunctionTool
from paxis_router.policy.predicates import EscalationPolicy
from paxis_router.pricing import GpuHourPrice, litellm_price
from paxis_router.router import Router
from paxis_router.testing import FunctionWorker
from paxis_router.types import CallRecord, ChatRequest, Completion, FunctionCall, ToolCall, Usage
from paxis_router.verifiers.tool_calls import ToolCallVerifier
from paxis_router.verifiers.tool_schema import to_json_schema, validator_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from bfcl_agent import Corrupter, Environments, MultiTurnTask, ScriptedModel, TaskRun

REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path:
    """``../shared/data/bfcl`` beside the repository (searched upwards from it, so a git
    worktree nested deeper finds the same folder)."""
    for folder in REPO.parents:
        candidate = folder / "shared" / "data" / "bfcl"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data" / "bfcl"


ANSWERED = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
)
IRRELEVANT = ("irrelevance", "live_irrelevance")
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_param")
CATEGORY_KEY = "bfcl_category"
CATCHABLE = (
    "wrong_function",
    "missing_required",
    "wrong_type",
    "invented_argument",
    "malformed_json",
    "enum_violation",
    "call_on_irrelevance",
)
UNCATCHABLE = ("wrong_value",)
INVENTED_NAMES = ("verbose", "format", "language", "timeout", "limit", "mode", "debug", "country")

Json = Any  # Any: decoded JSON


@dataclass
class Entry:
    """One BFCL question: its id, category, request, and ground truth (None: no answer file)."""

    id: str
    category: str
    request: ChatRequest
    functions: dict[str, Json]
    ground_truth: list[dict[str, dict[str, list[Json]]]] | None


@dataclass
class BfclData:
    """The questions read from ``--data``, by category (multi-turn rows kept raw)."""

    root: Path
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    multi_turn: dict[str, list[Json]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)


def _rows(path: Path) -> list[Json]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load(root: Path, limit: int | None = None) -> BfclData:
    """Every category under ``root`` (the first ``limit`` questions of each, when given)."""
    data = BfclData(root)
    for category in (*ANSWERED, *IRRELEVANT):
        path = root / f"BFCL_v4_{category}.json"
        if not path.is_file():
            continue
        rows = _rows(path)[:limit]
        answers: dict[str, Json] = {}
        answer_path = root / "possible_answer" / f"BFCL_v4_{category}.json"
        if answer_path.is_file():
            answers = {row["id"]: row["ground_truth"] for row in _rows(answer_path)}
        entries = []
        for row in rows:
            try:
                request = ChatRequest.model_validate(
                    {
                        "messages": row["question"][0],
                        "tools": [{"type": "function", "function": f} for f in row["function"]],
                        "metadata": {CATEGORY_KEY: category, "bfcl_id": row["id"]},
                    }
                )
            except ValueError as exc:  # a question our request model refuses: counted, named
                data.skipped[f"{category}: {type(exc).__name__}"] += 1
                continue
            functions = {f["name"]: f for f in row["function"]}
            entries.append(Entry(row["id"], category, request, functions, answers.get(row["id"])))
        data.entries[category] = entries
    for category in MULTI_TURN:
        path = root / f"BFCL_v4_{category}.json"
        if path.is_file():
            data.multi_turn[category] = _rows(path)[:limit]
    return data


# --- building completions from the ground truth -------------------------------------------------

OMIT = object()


def _first(options: list[Json], required: bool = False) -> Json:
    """The first acceptable value (OMIT when it is ``""``, BFCL's "leave it out", unless the
    schema requires the argument: then the first other one), nested dicts of options resolved
    the same way."""
    if required:
        options = [option for option in options if option != ""]
    if not options or options[0] == "":
        return OMIT
    return _resolve(options[0])


def _resolve(value: Json) -> Json:
    if isinstance(value, dict):  # a dict argument: each key again lists its acceptable values
        out = {}
        for key, options in value.items():
            chosen = _first(options) if isinstance(options, list) else options
            if chosen is not OMIT:
                out[key] = chosen
        return out
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    return value


def gt_arguments(options: dict[str, list[Json]], required: list[str]) -> dict[str, Json]:
    """A call's arguments from the ground truth: the first acceptable value of each."""
    arguments = {}
    for name, values in options.items():
        chosen = _first(values, name in required)
        if chosen is not OMIT:
            arguments[name] = chosen
    return arguments


def gt_calls(entry: Entry) -> list[tuple[str, dict[str, Json]]]:
    """The ground truth's calls, in order: (function name, arguments)."""
    assert entry.ground_truth is not None
    calls = []
    for call in entry.ground_truth:
        for name, options in call.items():
            function = entry.functions.get(name) or {}
            required = (function.get("parameters") or {}).get("required") or []
            calls.append((name, gt_arguments(options, list(required))))
    return calls


def completion_of(calls: list[tuple[str, str]]) -> Completion:
    """A completion calling ``(name, arguments_text)`` in order."""
    tool_calls = tuple(
        ToolCall(id=f"call_{i}", function=FunctionCall(name=name, arguments=text))
        for i, (name, text) in enumerate(calls)
    )
    return Completion("", "bfcl-ground-truth", Usage(0, 0), "tool_calls", tool_calls=tool_calls)


def _texts(calls: list[tuple[str, dict[str, Json]]]) -> list[tuple[str, str]]:
    return [(name, json.dumps(arguments)) for name, arguments in calls]


def relevance(request: ChatRequest) -> bool | None:
    """The caller's relevance check, from the dataset: nothing offered is relevant to an
    irrelevance question; no judgement on the others."""
    return False if request.metadata.get(CATEGORY_KEY) in IRRELEVANT else None


VERIFIER = ToolCallVerifier(relevance=relevance)
SCHEMA_ONLY = ToolCallVerifier()


def _judge(verifier: ToolCallVerifier, request: ChatRequest, completion: Completion) -> str:
    """ "" when accepted, else the reason (the verdict's, without its event-loop round trip)."""
    return "; ".join(verifier.problems(request, completion))


# --- gt_accept_rate -----------------------------------------------------------------------------


def rejection_class(reason: str) -> str:
    """The kind of a rejection, for the report."""
    for marker, name in (
        ("missing required argument", "missing_required"),
        ("unexpected argument", "invented_argument"),
        ("is not one of", "enum"),
        (": expected ", "type"),
        ("not among the offered tools", "unknown_function"),
        ("not valid JSON Schema", "invalid_schema"),
        ("not valid JSON", "malformed_json"),
    ):
        if marker in reason:
            return name
    return "other"


def gt_accept_rate(data: BfclData, args: argparse.Namespace) -> dict[str, Json]:
    """Share of ground-truth answers (single-turn categories with answers) accepted."""
    total = accepted = 0
    per_category: dict[str, dict[str, int]] = {}
    classes: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for category in ANSWERED:
        n = ok = 0
        for entry in data.entries.get(category, []):
            if entry.ground_truth is None:
                continue
            reason = _judge(VERIFIER, entry.request, completion_of(_texts(gt_calls(entry))))
            n += 1
            ok += not reason
            if reason:
                kind = rejection_class(reason)
                classes[kind] += 1
                shown = examples.setdefault(kind, [])
                if len(shown) < 3:
                    shown.append(f"{entry.id}: {reason}")
        per_category[category] = {"n": n, "accepted": ok}
        total += n
        accepted += ok
    # The irrelevance questions' right answer is no call: accepted with the relevance check?
    no_call = [
        _judge(VERIFIER, e.request, completion_of([]))
        for category in IRRELEVANT
        for e in data.entries.get(category, [])
    ]
    return {
        "gt_accept_rate": round(accepted / total, 4) if total else None,
        "gt_total": total,
        "gt_accepted": accepted,
        "gt_by_category": per_category,
        "gt_rejections": dict(classes),
        "gt_rejection_examples": examples,
        "irrelevance_no_call_accept_rate": (
            round(sum(not r for r in no_call) / len(no_call), 4) if no_call else None
        ),
    }


# --- corrupt_detect_rate ------------------------------------------------------------------------


def _schema(entry: Entry, name: str) -> Json:
    return to_json_schema(entry.functions[name].get("parameters"))


def _props(entry: Entry, name: str) -> dict[str, Json]:
    props = _schema(entry, name).get("properties")
    return props if isinstance(props, dict) else {}


def _other_type(value: Json, schema: Json) -> Json:
    """``value`` turned into a value of another JSON type than the schema's, or OMIT."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind is None or isinstance(kind, list):
        return OMIT  # unconstrained or a union: no single "wrong" type
    return {
        "string": 12345,
        "integer": "7",
        "number": "3.5",
        "boolean": "true",
        "array": "a, b",
        "object": "key=value",
        "null": 0,
    }.get(kind, OMIT)


def _same_type_other_value(value: Json, schema: Json) -> Json:
    enum = schema.get("enum") if isinstance(schema, dict) else None
    if isinstance(enum, list) and len(enum) > 1:
        return next(option for option in enum if option != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + " (other)" if value else "other"
    if isinstance(value, list):
        return [*value, value[-1]] if value else OMIT
    return OMIT


def corrupt(
    kind: str, entry: Entry, calls: list[tuple[str, dict[str, Json]]], rng: random.Random
) -> list[tuple[str, str]] | None:
    """The ground-truth calls with one corruption of ``kind``; None when it does not apply."""
    index = rng.randrange(len(calls))
    name, arguments = calls[index]
    arguments = dict(arguments)
    props = _props(entry, name)
    if kind == "wrong_function":
        others = [other for other in entry.functions if other != name]
        if not others:
            return None
        name = rng.choice(others)
    elif kind == "missing_required":
        required = [r for r in _schema(entry, name).get("required", []) if r in arguments]
        if not required:
            return None
        del arguments[rng.choice(required)]
    elif kind in ("wrong_type", "wrong_value", "enum_violation"):
        candidates = []
        for arg, value in arguments.items():
            schema = props.get(arg, {})
            if kind == "wrong_type":
                changed = _other_type(value, schema)
            elif kind == "wrong_value":
                changed = _same_type_other_value(value, schema)
            elif isinstance(schema.get("enum"), list) and isinstance(value, str):
                variant = value.upper() if value.upper() != value else value.lower() + "x"
                changed = variant if variant not in schema["enum"] else value + "_x"
            else:
                changed = OMIT
            if changed is not OMIT:
                candidates.append((arg, changed))
        if not candidates:
            return None
        arg, changed = rng.choice(candidates)
        arguments[arg] = changed
    elif kind == "invented_argument":
        free = [n for n in INVENTED_NAMES if n not in props]
        arguments[rng.choice(free)] = True
    texts = _texts([*calls[:index], (name, arguments), *calls[index + 1 :]])
    if kind == "malformed_json":
        text = texts[index][1]
        texts[index] = (texts[index][0], text[: max(len(text) - 1, 1)])  # the closing brace cut
    return texts


def _fits_another(
    entry: Entry, calls: list[tuple[str, dict[str, Json]]], texts: list[tuple[str, str]]
) -> bool:
    """Whether the call renamed by a ``wrong_function`` corruption still fits the parameter
    schema of the function it now names (a sibling with the same signature: no schema can
    tell them apart), checked with jsonschema directly."""
    for (old, _), (new, text) in zip(calls, texts, strict=True):
        if old != new:
            validator = validator_for(json.dumps(_schema(entry, new)))
            return bool(validator.is_valid(json.loads(text)))
    return False


def _plausible_call(entry: Entry, rng: random.Random) -> list[tuple[str, str]]:
    """A schema-valid call to one of the offered functions (required arguments filled)."""
    name = rng.choice(sorted(entry.functions))
    schema = _schema(entry, name)
    props = schema.get("properties") or {}
    arguments = {arg: _sample(props.get(arg, {})) for arg in schema.get("required", [])}
    return [(name, json.dumps(arguments))]


def _sample(schema: Json) -> Json:
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    values = {
        "string": "x",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "null": None,
    }
    if kind == "object":
        props = schema.get("properties") or {}
        return {arg: _sample(props.get(arg, {})) for arg in schema.get("required", [])}
    return values.get(kind, "x")


def corrupt_detect_rate(data: BfclData, args: argparse.Namespace) -> dict[str, Json]:
    """Share of corrupted ground-truth answers the verifier rejects, overall and per kind."""
    rng = random.Random(args.seed)
    counts: dict[str, list[int]] = {kind: [0, 0] for kind in (*CATCHABLE, *UNCATCHABLE)}
    schema_only = [0, 0]
    same_signature = [0, 0]  # wrong_function whose arguments fit the function it now names
    for category in ANSWERED:
        for entry in data.entries.get(category, []):
            if entry.ground_truth is None:
                continue
            calls = gt_calls(entry)
            if _judge(VERIFIER, entry.request, completion_of(_texts(calls))):
                continue  # only answers the verifier accepts uncorrupted tell what it catches
            for kind in (*CATCHABLE, *UNCATCHABLE):
                if kind == "call_on_irrelevance":
                    continue
                texts = corrupt(kind, entry, calls, rng)
                if texts is None:
                    continue
                detected = bool(_judge(VERIFIER, entry.request, completion_of(texts)))
                counts[kind][0] += 1
                counts[kind][1] += detected
                if kind == "wrong_function" and _fits_another(entry, calls, texts):
                    same_signature[0] += 1
                    same_signature[1] += detected
    for category in IRRELEVANT:
        for entry in data.entries.get(category, []):
            if not entry.functions:
                continue  # nothing offered to call
            texts = _plausible_call(entry, rng)
            counts["call_on_irrelevance"][0] += 1
            counts["call_on_irrelevance"][1] += bool(
                _judge(VERIFIER, entry.request, completion_of(texts))
            )
            schema_only[0] += 1
            schema_only[1] += bool(_judge(SCHEMA_ONLY, entry.request, completion_of(texts)))

    def rate(n_detected: list[int]) -> float | None:
        n, detected = n_detected
        return round(detected / n, 4) if n else None

    def pooled(kinds: tuple[str, ...]) -> float | None:
        return rate([sum(counts[k][0] for k in kinds), sum(counts[k][1] for k in kinds)])

    by_kind: dict[str, dict[str, Json]] = {
        kind: {"n": n, "detected": detected, "rate": rate([n, detected])}
        for kind, (n, detected) in counts.items()
    }
    n_wrong, detected_wrong = counts["wrong_function"]
    by_kind["wrong_function"]["arguments_fit_the_named_function"] = same_signature[0]
    by_kind["wrong_function"]["rate_when_they_do_not"] = rate(
        [n_wrong - same_signature[0], detected_wrong - same_signature[1]]
    )
    return {
        "corrupt_detect_rate": pooled((*CATCHABLE, *UNCATCHABLE)),
        "corrupt_detect_rate_schema_catchable": pooled(CATCHABLE),
        "corrupt_detect_rate_by_kind": by_kind,
        "call_on_irrelevance_schema_only": rate(schema_only),
    }


# --- the orchestrator on the multi-turn tasks ---------------------------------------------------

WORKER_PRICE = GpuHourPrice(Decimal("2.49"), throughput_tokens_per_s=Decimal(2500))
FRONTIER_MODEL = "gpt-4o"
AGENT_CORRUPTIONS = tuple(k for k in (*CATCHABLE, *UNCATCHABLE) if k != "call_on_irrelevance")


def _multi_turn(
    data: BfclData, args: argparse.Namespace
) -> tuple[Environments, list[MultiTurnTask]]:
    import bfcl_agent  # beside this script; imports the environments from the data folder

    rows = data.multi_turn.get(args.category, [])
    return bfcl_agent.Environments(data.root), bfcl_agent.load_tasks(data.root, rows, args.category)


def _run_all(
    envs: Environments,
    tasks: list[MultiTurnTask],
    router_for: Callable[[ScriptedModel, ScriptedModel], Router],
    corrupter_for: Callable[[MultiTurnTask], Corrupter | None] = lambda task: None,
) -> list[TaskRun]:
    import bfcl_agent

    async def run() -> list[TaskRun]:
        return [
            await bfcl_agent.run_task(envs, task, router_for, corrupter_for(task)) for task in tasks
        ]

    return asyncio.run(run())


def _share(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.000001")))


def multi_turn_state_match(data: BfclData, args: argparse.Namespace) -> dict[str, Json]:
    """Share of multi-turn tasks the orchestrator ends in the ground truth's state."""
    envs, tasks = _multi_turn(data, args)

    def router_for(worker: ScriptedModel, frontier: ScriptedModel) -> Router:
        return Router(tiers=[FunctionWorker(frontier, name="local:ground-truth")])

    runs = _run_all(envs, tasks, router_for)
    tool_runs = [run for task in runs for run in task.tool_runs]
    return {
        "multi_turn_category": args.category,
        "multi_turn_tasks": len(runs),
        "multi_turn_state_match": _share(sum(r.state_match for r in runs), len(runs)),
        "multi_turn_bfcl_check": _share(sum(r.bfcl_match for r in runs), len(runs)),
        "multi_turn_turns": sum(len(r.results) for r in runs),
        "multi_turn_steps": sum(r.steps for r in runs),
        "multi_turn_tool_calls": len(tool_runs),
        "multi_turn_tool_calls_rejected": sum(not run.ok for run in tool_runs),
        "multi_turn_misses": [
            {"id": r.id, "final_state_match": r.state_match, "why": r.first_miss}
            for r in runs
            if not r.bfcl_match
        ],
    }


class _Corruptions:
    """The worker's corrupter: each call spoiled with probability ``share``, the kind drawn
    among those that apply to it, seeded by (seed, task, turn) so every ladder that asks the
    worker sees the same corruptions; ``log`` has (task, turn, call index, kind, invisible)."""

    def __init__(self, envs: Environments, share: float, seed: int) -> None:
        self.envs = envs
        self.share = share
        self.seed = seed
        self.log: dict[tuple[str, int, int], tuple[str, bool]] = {}

    def for_task(self, task: MultiTurnTask) -> Corrupter:
        functions = self.envs.functions(task)
        entry = Entry(task.id, "multi_turn", ChatRequest.from_text(task.id), functions, None)

        def corrupter(
            turn: int, calls: list[tuple[str, dict[str, Json]]]
        ) -> list[tuple[str, str]] | None:
            rng = random.Random(f"{self.seed}:{task.id}:{turn}")
            texts = _texts(calls)
            spoiled = False
            for index, call in enumerate(calls):
                if rng.random() >= self.share:
                    continue
                for kind in rng.sample(AGENT_CORRUPTIONS, len(AGENT_CORRUPTIONS)):
                    changed = corrupt(kind, entry, [call], rng)
                    if changed is not None:
                        break
                else:
                    continue
                texts[index] = changed[0]
                spoiled = True
                invisible = kind in UNCATCHABLE or (
                    kind == "wrong_function" and _fits_another(entry, [call], changed)
                )
                self.log[(task.id, turn, index)] = (kind, invisible)
            return texts if spoiled else None

        return corrupter


class _Rows:
    """A ledger sink that keeps the rows (CallRecords) in memory."""

    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def record(self, entry: CallRecord) -> None:
        self.rows.append(entry)


def escalation_demo(data: BfclData, args: argparse.Namespace) -> dict[str, Json]:
    """Worker-only, frontier-only and routed on the multi-turn tasks (see the module doc)."""
    envs, tasks = _multi_turn(data, args)
    frontier_price = litellm_price(FRONTIER_MODEL)
    corruptions = _Corruptions(envs, args.corrupt_share, args.seed)

    def worker_tier(model: ScriptedModel) -> FunctionWorker:
        return FunctionWorker(model, name="local:worker", price=WORKER_PRICE)

    def frontier_tier(model: ScriptedModel) -> FunctionWorker:
        return FunctionWorker(
            model, name=f"frontier:{FRONTIER_MODEL}", price=frontier_price, destination="openai"
        )

    serve_anyway = EscalationPolicy(on_exhausted="return_best")
    rows = _Rows()
    ladders: dict[str, Callable[[ScriptedModel, ScriptedModel], Router]] = {
        "worker_only": lambda w, f: Router(tiers=[worker_tier(w)], policy=serve_anyway),
        "frontier_only": lambda w, f: Router(tiers=[frontier_tier(f)]),
        "routed": lambda w, f: Router(tiers=[worker_tier(w), frontier_tier(f)], ledger=rows),
    }
    runs = {
        name: _run_all(envs, tasks, ladder, corruptions.for_task)
        for name, ladder in ladders.items()
    }
    routed = runs["routed"]
    by_id = {r.id: r for r in routed}

    def caught(task_id: str, turn: int) -> bool:
        """Whether the tool-call check rejected the worker's calls of that turn (the routed
        ladder's ledger: the worker's attempt at the turn's first step)."""
        worker = [
            r
            for r in rows.rows
            if r.tier == "local:worker"
            and r.tags.get("bfcl_id") == task_id
            and r.tags.get("turn") == str(turn)
        ]
        first = min(worker, key=lambda r: r.step or 0)
        return not first.passed

    kinds: dict[str, dict[str, Json]] = {  # every kind, those that never applied with n 0
        kind: {"n": 0, "invisible_to_a_schema": 0, "step_escalated": 0, "escalated_by_another": 0}
        for kind in AGENT_CORRUPTIONS
    }
    uncaught_tasks: dict[str, set[str]] = {}
    visible_in_step: Counter[tuple[str, int]] = Counter()
    for (task_id, turn, _), (_, invisible) in corruptions.log.items():
        visible_in_step[(task_id, turn)] += not invisible
    for (task_id, turn, _), (kind, invisible) in sorted(corruptions.log.items()):
        row = kinds[kind]
        row["n"] += 1
        row["invisible_to_a_schema"] += invisible
        if caught(task_id, turn):
            row["step_escalated"] += 1
            # an invisible one rides along with a visible one in the same step: the frontier
            # redoes the whole step, so it is fixed without being seen
            row["escalated_by_another"] += invisible and visible_in_step[(task_id, turn)] > 0
        else:
            uncaught_tasks.setdefault(kind, set()).add(task_id)
    for kind, row in kinds.items():
        row["step_escalated_rate"] = _share(row["step_escalated"], row["n"])
        hit = [by_id[task_id] for task_id in sorted(uncaught_tasks.get(kind, ()))]
        row["tasks_it_went_through"] = len(hit)
        row["their_state_match"] = _share(sum(r.state_match for r in hit), len(hit))
        row["their_bfcl_check"] = _share(sum(r.bfcl_match for r in hit), len(hit))
    spoiled_tasks = {task_id for task_id, _, _ in corruptions.log}
    any_uncaught = set().union(*uncaught_tasks.values()) if uncaught_tasks else set()
    groups = {
        "no_corruption": [r for r in routed if r.id not in spoiled_tasks],
        "all_corruptions_caught": [r for r in routed if r.id in spoiled_tasks - any_uncaught],
        "an_uncaught_corruption": [r for r in routed if r.id in any_uncaught],
    }
    steps = sum(r.steps for r in routed)
    call_steps = sum(1 for r in routed for res in r.results for s in res.steps if s.tool_runs)
    costs = {name: _total([r.cost_usd for r in ladder_runs]) for name, ladder_runs in runs.items()}
    counterfactual = _total([r.counterfactual_usd for r in routed])
    return {
        "escalation_corrupt_share": args.corrupt_share,
        "escalation_tasks": len(routed),
        "escalation_calls": sum(len(t) for task in tasks for t in task.ground_truth),
        "escalation_calls_corrupted": len(corruptions.log),
        "escalation_task_success": {
            name: {
                "state_match": _share(sum(r.state_match for r in ladder_runs), len(ladder_runs)),
                "bfcl_check": _share(sum(r.bfcl_match for r in ladder_runs), len(ladder_runs)),
            }
            for name, ladder_runs in runs.items()
        },
        "escalation_steps": steps,
        "escalation_steps_escalated": sum(r.escalated_steps for r in routed),
        "escalation_share_of_steps": _share(sum(r.escalated_steps for r in routed), steps),
        "escalation_share_of_call_steps": _share(
            sum(r.escalated_steps for r in routed), call_steps
        ),
        "escalation_by_kind": kinds,
        "escalation_routed_success_by_group": {
            name: {
                "tasks": len(group),
                "state_match": _share(sum(r.state_match for r in group), len(group)),
                "bfcl_check": _share(sum(r.bfcl_match for r in group), len(group)),
            }
            for name, group in groups.items()
        },
        "escalation_cost_usd": {name: _usd(cost) for name, cost in costs.items()},
        "escalation_routed_counterfactual_usd": _usd(counterfactual),
        "escalation_cost_ratio_routed_vs_frontier": (
            round(float(costs["routed"] / costs["frontier_only"]), 4)
            if costs["routed"] is not None and costs["frontier_only"]
            else None
        ),
        "escalation_prices": {
            "worker": "local GPU tier: $2.49/GPU-hour at 2,500 tokens/s",
            "frontier": f"{FRONTIER_MODEL} from the shipped price map: "
            + (
                "unknown"
                if frontier_price is None
                else f"${frontier_price.input_usd_per_token * 1_000_000}/M input, "
                f"${frontier_price.output_usd_per_token * 1_000_000}/M output"
            ),
            "tokens": "estimated: ceil(characters / 4) of the messages and offered tools",
        },
    }


def _total(values: list[Decimal | None]) -> Decimal | None:
    if any(value is None for value in values):
        return None
    return sum((value for value in values if value is not None), Decimal(0))


def _default_policy_router(folder: Path) -> Router:
    """``policies/default.yaml`` as shipped, without its skill library (the tasks bring their
    own tools), its ledger and audit log in ``folder``; the workers are swapped per task."""
    from paxis_router.config import load_config

    cfg = load_config(REPO / "policies" / "default.yaml")
    assert cfg.ledger is not None and cfg.audit is not None
    cfg = cfg.model_copy(
        update={
            "skills": None,
            "ledger": cfg.ledger.model_copy(update={"path": folder / "ledger.db"}),
            "audit": cfg.audit.model_copy(update={"path": folder / "audit.jsonl"}),
        }
    )
    return Router.from_config(cfg)


def agent_step_overhead(data: BfclData, args: argparse.Namespace) -> dict[str, Json]:
    """The orchestrator's time per step on the multi-turn tasks, without the model's and the
    environments' own time, against one ``litellm.completion(mock_response=...)``.

    Two ladders, each a scripted local tier: ``bare`` (the router's implicit tool-call check,
    nothing recorded) and ``default_policy`` (``policies/default.yaml`` without its skills:
    SQLite ledger, audit log, gate, its verifiers). Each pass runs every task once per ladder
    (interleaved, so both see the same machine); after a warm-up pass, the median and the
    minimum over ``--overhead-repeat`` passes.
    """
    import bfcl_agent
    from overhead import measure_litellm_mock_us

    envs, tasks = _multi_turn(data, args)
    env_s = [0.0]

    def timed(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(**kwargs)
            finally:
                env_s[0] += time.perf_counter() - t0

        return call

    async def one(task: MultiTurnTask, base: Router) -> tuple[float, int]:
        """(the orchestrator's seconds over the task's sends, steps)."""
        instances = envs.fresh(task)
        table = bfcl_agent.methods(instances)
        model = bfcl_agent.ScriptedModel(bfcl_agent.ground_truth_calls(task, table))
        tiers = [
            replace(t, worker=FunctionWorker(model, name=t.name, price=t.price))
            for t in base.tiers[:1]
        ]
        router = Router(
            tiers=tiers,
            verifiers=base.verifiers,
            policy=base.policy,
            ledger=base.sinks,
            gate=base.gate,
            audit=base.audit,
            outage=base.outage,
        )
        tools = [
            FunctionTool(
                timed(table[name]),
                name=name,
                description=doc.get("description"),
                parameters=doc["parameters"],
            )
            for name, doc in envs.functions(task).items()
        ]
        chat = Agent(router, tools=tools, max_steps=5).conversation(team="bench")
        env_s[0] = 0.0
        steps = 0
        t0 = time.perf_counter()
        for text in task.turns:
            steps += len((await chat.send(text)).steps)
        wall = time.perf_counter() - t0
        return wall - model.model_s - env_s[0], steps

    passes: dict[str, list[float]] = {"bare": [], "default_policy": []}
    with tempfile.TemporaryDirectory() as folder:
        ladders = {
            "bare": Router(
                tiers=[FunctionWorker(lambda r, s: "", name="local:w", price=WORKER_PRICE)]
            ),
            "default_policy": _default_policy_router(Path(folder)),
        }

        async def measure() -> None:
            for index in range(args.overhead_repeat + 1):  # the first pass warms up
                for name, base in ladders.items():
                    spent, steps = 0.0, 0
                    for task in tasks:
                        seconds, n = await one(task, base)
                        spent, steps = spent + seconds, steps + n
                    if index:
                        passes[name].append(spent / max(steps, 1) * 1e6)
            for base in ladders.values():
                await base.aclose()

        asyncio.run(measure())
    try:
        litellm_us: float | None = measure_litellm_mock_us(7, 100)
    except ImportError:  # the [litellm] extra is not installed: no baseline
        litellm_us = None
    report: dict[str, Json] = {
        "agent_step_tasks": len(tasks),
        "agent_step_repeats": args.overhead_repeat,
        "agent_step_litellm_mock_us": None if litellm_us is None else round(litellm_us, 1),
    }
    for name, values in passes.items():
        median, best = statistics.median(values), min(values)
        report[f"agent_step_us_{name}"] = {"median": round(median, 1), "min": round(best, 1)}
        report[f"agent_step_ratio_{name}"] = (
            None if litellm_us is None else round(median / litellm_us, 3)
        )
    return report


#: Metric name -> function ``(data, args) -> dict`` of figures.
METRICS: dict[str, Callable[[BfclData, argparse.Namespace], dict[str, Json]]] = {
    "gt_accept_rate": gt_accept_rate,
    "corrupt_detect_rate": corrupt_detect_rate,
    "multi_turn_state_match": multi_turn_state_match,
    "escalation_demo": escalation_demo,
    "agent_step_overhead": agent_step_overhead,
}


def run(args: argparse.Namespace) -> dict[str, Json]:
    t0 = time.perf_counter()
    data = load(Path(args.data), args.limit)
    report: dict[str, Json] = {
        "data": str(data.root),
        "seed": args.seed,
        "limit": args.limit,
        "questions": {category: len(entries) for category, entries in data.entries.items()},
        "skipped": dict(data.skipped),
    }
    for name in args.metrics or METRICS:
        report.update(METRICS[name](data, args))
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(default_data()), help="the BFCL v4 folder")
    parser.add_argument("--limit", type=int, default=None, help="questions per category")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions")
    parser.add_argument("--metric", dest="metrics", action="append", choices=sorted(METRICS))
    parser.add_argument("--category", default="multi_turn_base", choices=MULTI_TURN)
    parser.add_argument(
        "--corrupt-share", type=float, default=0.2, help="share of the worker's calls spoiled"
    )
    parser.add_argument(
        "--overhead-repeat", type=int, default=3, help="timed passes over the multi-turn tasks"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not (Path(args.data) / "SOURCE.md").is_file():
        print(f"no BFCL data at {args.data} (see --data)", file=sys.stderr)
        return 2
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
