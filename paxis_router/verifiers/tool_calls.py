"""ToolCallVerifier: the answer's tool calls must be calls the request allows, with valid arguments.

Checked against the request's ``tools``, ``tool_choice`` and ``parallel_tool_calls``:

- every called function is among the tools offered;
- its arguments are JSON, a JSON object, valid against the function's parameter schema
  (type names such as ``dict``/``float``/``tuple``/``any`` mapped to JSON Schema by
  :func:`~paxis_router.verifiers.tool_schema.to_json_schema`): required arguments present, none
  the function does not declare (unless its schema allows more), types and enums respected;
- ``tool_choice``: ``"none"`` means no call, ``"required"`` at least one, a named function
  means calls to that function only (at least one);
- ``parallel_tool_calls: false`` means at most one call.

Whether a call was the right move at all is a judgement about the task, not the schema: with
nothing relevant among the tools the right answer is no call, and some requests need a call.
Give it as ``relevance``, a function of the request returning True (a call is needed), False
(nothing offered is relevant: any call is wrong) or None (no judgement; the default).

A rejection names the failure exactly (function, call index, argument, expected and got); the
router writes it into the ledger row's reason.

Example:
    >>> import asyncio
    >>> from paxis_router.types import ChatRequest, Completion, ToolCall
    >>> request = ChatRequest.model_validate({
    ...     "messages": [{"role": "user", "content": "Weather in Paris?"}],
    ...     "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
    ...         "type": "object", "properties": {"city": {"type": "string"}},
    ...         "required": ["city"]}}}]})
    >>> call = ToolCall.model_validate(
    ...     {"id": "c1", "function": {"name": "get_weather", "arguments": '{"town": "Paris"}'}})
    >>> verdict = asyncio.run(ToolCallVerifier().verify(request, Completion("", "m",
    ...     tool_calls=(call,))))
    >>> verdict.passed
    False
    >>> for problem in verdict.reason.split("; "):
    ...     print(problem)
    get_weather (call 0): missing required argument 'city'
    get_weather (call 0): unexpected argument 'town' (it takes: city)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from paxis_router.types import NamedToolChoice, Verdict
from paxis_router.verifiers.tool_schema import to_json_schema, validator_for

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jsonschema import ValidationError

    from paxis_router.types import ChatRequest, Completion, Tool, ToolCall

_MAX_PROBLEMS_SHOWN = 4
_ORDER = {"required": 0, "additionalProperties": 1, "type": 2, "enum": 3}  # problems, in order


class ToolCallVerifier:
    """Judges a completion's tool calls against the request's tools (see the module doc).

    Args:
        relevance: ``fn(request) -> True | False | None``: True when the request needs a tool
            call (an answer without one fails), False when no offered tool is relevant (any
            call fails), None for no judgement. Default: no judgement.
        name: the verifier's name in verdicts and the ledger.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> v = ToolCallVerifier(relevance=lambda request: True)
        >>> asyncio.run(v.verify(ChatRequest.from_text("q"), Completion("hi", "m"))).reason
        'the request needs a tool call (relevance check), but the answer calls none'
    """

    def __init__(
        self,
        *,
        relevance: Callable[[ChatRequest], bool | None] | None = None,
        name: str = "tool_calls",
    ) -> None:
        self.name = name
        self.relevance = relevance

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        problems = self.problems(request, completion)
        if problems:
            shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
            if len(problems) > _MAX_PROBLEMS_SHOWN:
                shown += f"; and {len(problems) - _MAX_PROBLEMS_SHOWN} more"
            return Verdict(self.name, False, None, shown)
        calls = completion.tool_calls
        if not calls:
            return Verdict(self.name, True, None, "no tool call")
        names = ", ".join(c.name for c in calls)
        return Verdict(self.name, True, None, f"{len(calls)} valid tool call(s): {names}")

    def problems(self, request: ChatRequest, completion: Completion) -> list[str]:
        """Every problem with the completion's tool calls, in order (empty: they are valid)."""
        calls = completion.tool_calls
        problems = _choice_problems(request, calls)
        if self.relevance is not None:
            relevant = self.relevance(request)
            if relevant is False and calls:
                problems.append(
                    "no offered tool is relevant to this request (relevance check), but the "
                    f"answer calls {_names(calls)}"
                )
            elif relevant is True and not calls:
                problems.append(
                    "the request needs a tool call (relevance check), but the answer calls none"
                )
        offered = {tool.name: tool for tool in request.tools or ()}
        for index, call in enumerate(calls):
            problems.extend(_call_problems(index, call, offered))
        return list(dict.fromkeys(problems))  # one schema error may be reported per property


def _names(calls: Sequence[ToolCall]) -> str:
    return ", ".join(repr(c.name) for c in calls)


def _choice_problems(request: ChatRequest, calls: tuple[ToolCall, ...]) -> list[str]:
    choice = request.tool_choice
    problems = []
    if choice == "none" and calls:
        problems.append(f"tool_choice is 'none', but the answer calls {_names(calls)}")
    elif choice == "required" and not calls:
        problems.append("tool_choice is 'required', but the answer calls no tool")
    elif isinstance(choice, NamedToolChoice):
        wanted = choice.function.name
        if not calls:
            problems.append(f"tool_choice names {wanted!r}, but the answer calls no tool")
        others = [c for c in calls if c.name != wanted]
        if others:
            problems.append(f"tool_choice names {wanted!r}, but the answer calls {_names(others)}")
    if request.parallel_tool_calls is False and len(calls) > 1:
        problems.append(
            f"parallel_tool_calls is false, but the answer makes {len(calls)} calls "
            f"({_names(calls)})"
        )
    return problems


def _call_problems(index: int, call: ToolCall, offered: dict[str, Tool]) -> list[str]:
    where = f"{call.name or '(no name)'} (call {index})"
    tool = offered.get(call.name)
    if tool is None:
        names = ", ".join(offered) if offered else "none"
        return [f"call {index} names {call.name!r}, which is not among the offered tools ({names})"]
    text = call.arguments if call.arguments.strip() else "{}"
    try:
        arguments = json.loads(text)
    except ValueError as exc:
        shown = text if len(text) <= 80 else text[:77] + "..."
        return [f"{where}: the arguments are not valid JSON ({exc}): {shown!r}"]
    if not isinstance(arguments, dict):
        return [f"{where}: the arguments must be a JSON object, got {_kind(arguments)}"]
    import jsonschema  # imported here: slow to import; only tool users pay

    schema = to_json_schema(tool.function.parameters)
    try:
        validator = validator_for(json.dumps(schema))
    except jsonschema.SchemaError as exc:
        return [
            f"{where}: the offered tool's parameter schema is not valid JSON Schema "
            f"({exc.message}); fix the tool definition"
        ]
    errors = sorted(
        validator.iter_errors(arguments),
        key=lambda e: ([str(p) for p in e.absolute_path], _ORDER.get(str(e.validator), 9)),
    )
    return [f"{where}: {_describe(error)}" for error in errors]


def _describe(error: ValidationError) -> str:
    """One schema violation in words: which argument, what was expected, what came."""
    path = ".".join(str(p) for p in error.absolute_path)
    instance = error.instance
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required" and isinstance(instance, dict):
        required: list[str] = list(error.validator_value)  # type: ignore[arg-type]  # a list here
        missing = [name for name in required if name not in instance]
        names = ", ".join(repr(_join(path, name)) for name in missing)
        return f"missing required argument {names}"
    if kind == "additionalProperties" and isinstance(instance, dict):
        declared = schema.get("properties") or {}
        extra = [name for name in instance if name not in declared]
        takes = ", ".join(declared) if declared else "no arguments"
        names = ", ".join(repr(_join(path, name)) for name in extra)
        return f"unexpected argument {names} (it takes: {takes})"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"argument {path!r}: expected {expected}, got {_kind(instance)} {_shown(instance)}"
    if kind == "enum":
        return f"argument {path!r}: {_shown(instance)} is not one of {error.validator_value!r}"
    return f"argument {path!r}: {error.message}" if path else error.message


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:  # Any: decoded JSON
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _shown(value: Any) -> str:  # Any: decoded JSON
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
