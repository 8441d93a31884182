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

Extension points: the orchestrator's metrics (``multi_turn_state_match`` on the
``multi_turn_*`` categories with the executable environments in ``<data>/envs``, and
``escalation_demo``) are added to :data:`METRICS` as functions ``(data, args) -> dict`` of their
own; :func:`load` reads every category, multi-turn included.

Run: ``.venv/bin/python benchmarks/tools_bench.py --json [--data DIR] [--limit N] [--seed S]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.types import ChatRequest, Completion, FunctionCall, ToolCall, Usage
from paxis_router.verifiers.tool_calls import ToolCallVerifier
from paxis_router.verifiers.tool_schema import to_json_schema, validator_for

if TYPE_CHECKING:
    from collections.abc import Callable

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
    n, detected = counts["wrong_function"]
    by_kind["wrong_function"]["arguments_fit_the_named_function"] = same_signature[0]
    by_kind["wrong_function"]["rate_when_they_do_not"] = rate(
        [n - same_signature[0], detected - same_signature[1]]
    )
    return {
        "corrupt_detect_rate": pooled((*CATCHABLE, *UNCATCHABLE)),
        "corrupt_detect_rate_schema_catchable": pooled(CATCHABLE),
        "corrupt_detect_rate_by_kind": by_kind,
        "call_on_irrelevance_schema_only": rate(schema_only),
    }


#: Metric name -> function ``(data, args) -> dict`` of figures; extend here (the orchestrator's
#: ``multi_turn_state_match`` and ``escalation_demo`` go beside these).
METRICS: dict[str, Callable[[BfclData, argparse.Namespace], dict[str, Json]]] = {
    "gt_accept_rate": gt_accept_rate,
    "corrupt_detect_rate": corrupt_detect_rate,
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
