"""ToolCallVerifier, ResponseFormatVerifier, the implicit verifiers and their YAML kinds."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from paxis_router import Router, SQLiteLedger
from paxis_router.config.verifiers import VerifierSpec, build_verifier
from paxis_router.errors import ConfigError
from paxis_router.testing import FakeWorker
from paxis_router.types import ChatRequest, Completion, FunctionCall, ToolCall, Usage
from paxis_router.verifiers import implicit, response_format, tool_calls, tool_schema
from paxis_router.verifiers.base import Verifier
from paxis_router.verifiers.implicit import implicit_verifiers
from paxis_router.verifiers.non_empty import NonEmptyVerifier
from paxis_router.verifiers.response_format import ResponseFormatVerifier
from paxis_router.verifiers.tool_calls import ToolCallVerifier
from paxis_router.verifiers.tool_schema import to_json_schema
from paxis_router.verifiers.well_formed import WellFormedVerifier

WEATHER: dict[str, Any] = {  # Any: a tool as JSON
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "dict",  # BFCL's name for an object
            "properties": {
                "city": {"type": "String"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "coords": {"type": "tuple", "items": {"type": "float"}},
                "extra": {"type": "any"},
            },
            "required": ["city"],
        },
    },
}
TIME: dict[str, Any] = {  # Any: a tool as JSON
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def _request(**fields: Any) -> ChatRequest:  # Any: ChatRequest fields as JSON
    body = {
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [WEATHER, TIME],
    }
    return ChatRequest.model_validate({**body, **fields})


def _call(name: str, arguments: str | dict[str, Any], index: int = 0) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=f"c{index}", function=FunctionCall(name=name, arguments=text))


def _calling(*calls: ToolCall, content: str = "") -> Completion:
    return Completion(
        content, "m", Usage(5, 5), "tool_calls" if calls else "stop", tool_calls=calls
    )


async def _judge(completion: Completion, request: ChatRequest | None = None, **kwargs: Any) -> str:
    verdict = await ToolCallVerifier(**kwargs).verify(request or _request(), completion)
    return "pass" if verdict.passed else verdict.reason


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"city": "Paris"}, "pass"),
        (
            {"city": "Paris", "days": 3, "unit": "celsius", "coords": [48.8, 2], "extra": [1]},
            "pass",
        ),
        ({}, "get_weather (call 0): missing required argument 'city'"),
        (
            {"city": "Paris", "country": "FR"},
            "get_weather (call 0): unexpected argument 'country' "
            "(it takes: city, days, unit, coords, extra)",
        ),
        (
            {"city": "Paris", "days": "3"},
            "get_weather (call 0): argument 'days': expected integer, got string \"3\"",
        ),
        ({"city": 7}, "get_weather (call 0): argument 'city': expected string, got integer 7"),
        (
            {"city": "Paris", "unit": "kelvin"},
            "get_weather (call 0): argument 'unit': \"kelvin\" is not one of "
            "['celsius', 'fahrenheit']",
        ),
        (
            {"city": "Paris", "coords": [48.8, "2E"]},
            "get_weather (call 0): argument 'coords.1': expected number, got string \"2E\"",
        ),
        (
            {"city": "Paris", "days": True},
            "get_weather (call 0): argument 'days': expected integer, got boolean true",
        ),
    ],
    ids=[
        "required-only",
        "every-argument",
        "missing-required",
        "invented",
        "wrong-type",
        "wrong-type-string",
        "enum",
        "nested-item",
        "bool-is-no-integer",
    ],
)
async def test_arguments_are_judged_against_the_schema(
    arguments: dict[str, Any], expected: str
) -> None:
    assert await _judge(_calling(_call("get_weather", arguments))) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"city": "Par', "get_weather (call 0): the arguments are not valid JSON"),
        ('["Paris"]', "get_weather (call 0): the arguments must be a JSON object, got array"),
        ("", "get_weather (call 0): missing required argument 'city'"),
    ],
)
async def test_arguments_that_are_not_a_json_object(text: str, expected: str) -> None:
    assert (await _judge(_calling(_call("get_weather", text)))).startswith(expected)


async def test_a_function_not_offered_is_named_with_the_offered_ones() -> None:
    reason = await _judge(_calling(_call("get_forecast", {"city": "Paris"})))
    assert reason == (
        "call 0 names 'get_forecast', which is not among the offered tools (get_weather, get_time)"
    )
    unoffered = ChatRequest.from_text("hi")
    assert await _judge(_calling(_call("get_time", {})), unoffered) == (
        "call 0 names 'get_time', which is not among the offered tools (none)"
    )


@pytest.mark.parametrize(
    ("fields", "calls", "expected"),
    [
        ({"tool_choice": "none"}, 1, "tool_choice is 'none', but the answer calls 'get_time'"),
        ({"tool_choice": "none"}, 0, "pass"),
        ({"tool_choice": "required"}, 0, "tool_choice is 'required', but the answer calls no tool"),
        ({"tool_choice": "required"}, 1, "pass"),
        ({"tool_choice": "auto"}, 0, "pass"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            1,
            "tool_choice names 'get_weather', but the answer calls 'get_time'",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            0,
            "tool_choice names 'get_weather', but the answer calls no tool",
        ),
        (
            {"parallel_tool_calls": False},
            2,
            "parallel_tool_calls is false, but the answer makes 2 calls ('get_time', 'get_time')",
        ),
        ({"parallel_tool_calls": True}, 2, "pass"),
    ],
)
async def test_tool_choice_and_parallel_tool_calls_are_honoured(
    fields: dict[str, Any], calls: int, expected: str
) -> None:
    made = tuple(_call("get_time", {}, i) for i in range(calls))
    assert await _judge(_calling(*made), _request(**fields)) == expected


@pytest.mark.parametrize(
    ("relevant", "calls", "expected"),
    [
        (False, 1, "no offered tool is relevant to this request (relevance check), but the answer"),
        (False, 0, "pass"),
        (True, 0, "the request needs a tool call (relevance check), but the answer calls none"),
        (True, 1, "pass"),
        (None, 0, "pass"),
        (None, 1, "pass"),
    ],
)
async def test_relevance_is_the_callers_judgement(
    relevant: bool | None, calls: int, expected: str
) -> None:
    made = tuple(_call("get_time", {}, i) for i in range(calls))
    reason = await _judge(_calling(*made), relevance=lambda request: relevant)
    assert reason.startswith(expected)


async def test_every_problem_is_named_and_a_long_list_is_cut() -> None:
    calls = [_call("nope", {}, i) for i in range(6)]
    verdict = await ToolCallVerifier().verify(_request(), _calling(*calls))
    assert verdict.reason.count("which is not among the offered tools") == 4
    assert verdict.reason.endswith("; and 2 more")


async def test_a_passing_verdict_says_what_was_called() -> None:
    verdict = await ToolCallVerifier().verify(
        _request(), _calling(_call("get_weather", {"city": "Oslo"}), _call("get_time", {}, 1))
    )
    assert (verdict.passed, verdict.reason) == (True, "2 valid tool call(s): get_weather, get_time")


async def test_a_broken_tool_schema_is_a_named_rejection_not_a_crash() -> None:
    bad = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "required": "x"}},
    }
    request = ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "q"}], "tools": [bad]}
    )
    reason = await _judge(_calling(_call("f", {})), request)
    assert reason.startswith(
        "f (call 0): the offered tool's parameter schema is not valid JSON Schema"
    )


@pytest.mark.parametrize(
    ("written", "json_schema"),
    [
        ({"type": "dict"}, {"type": "object"}),
        ({"type": "Float"}, {"type": "number"}),
        (
            {"type": "tuple", "items": [{"type": "str"}]},
            {"type": "array", "prefixItems": [{"type": "string"}]},
        ),
        ({"type": "any"}, {}),
        ({"type": "who-knows"}, {}),
        ({"type": ["int", "null"]}, {"type": ["integer", "null"]}),
        (
            {"type": "dict", "properties": {"a": {"type": "list", "items": {"type": "bool"}}}},
            {
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "boolean"}}},
                "additionalProperties": False,
            },
        ),
        (
            {"type": "object", "properties": {}, "additionalProperties": True},
            {"type": "object", "properties": {}, "additionalProperties": True},
        ),
        (
            {"anyOf": [{"type": "dict", "properties": {"x": {"type": "int"}}}]},
            {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"x": {"type": "integer"}},
                        "additionalProperties": False,
                    }
                ]
            },
        ),
    ],
)
def test_type_names_of_real_tool_schemas_map_to_json_schema(
    written: dict[str, Any], json_schema: dict[str, Any]
) -> None:
    assert to_json_schema(written) == json_schema


def test_a_function_without_parameters_takes_none() -> None:
    assert to_json_schema(None) == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


# --- response_format ---------------------------------------------------------------------------

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {
            "type": "object",
            "properties": {"total": {"type": "number"}},
            "required": ["total"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        (None, "not json", "pass"),
        ({"type": "text"}, "not json", "pass"),
        ({"type": "json_object"}, '{"a": 1}', "pass"),
        (
            {"type": "json_object"},
            "[1]",
            "the request asked for a JSON object (response_format json_object), got array",
        ),
        (
            {"type": "json_object"},
            '```json\n{"a": 1}\n```',
            "the answer is not the JSON the request asked for",
        ),
        (SCHEMA_FORMAT, '{"total": 4}', "pass"),
        (
            SCHEMA_FORMAT,
            '{"total": "4"}',
            "the answer does not fit schema 'answer' of response_format: "
            "$.total: '4' is not of type 'number'",
        ),
        (
            SCHEMA_FORMAT,
            "{}",
            "the answer does not fit schema 'answer' of response_format: "
            "$: 'total' is a required property",
        ),
        ({"type": "json_schema", "json_schema": {"name": "free"}}, "[]", "pass"),
    ],
)
async def test_response_format_is_checked(
    fmt: dict[str, Any] | None, content: str, expected: str
) -> None:
    request = ChatRequest.from_text("q").model_copy(update={"response_format": fmt})
    completion = Completion(content, "m", Usage(1, 1))
    for verifier in (ResponseFormatVerifier(), WellFormedVerifier()):
        verdict = await verifier.verify(request, completion)
        assert ("pass" if verdict.passed else verdict.reason).startswith(expected)


async def test_an_answer_that_calls_tools_is_neither_empty_nor_unformatted() -> None:
    request = _request(response_format={"type": "json_object"})
    completion = _calling(_call("get_time", {}))
    for verifier in (NonEmptyVerifier(), WellFormedVerifier(), ResponseFormatVerifier()):
        assert (await verifier.verify(request, completion)).passed, verifier.name


# --- implicit verifiers, and through the router -----------------------------------------------


def test_implicit_verifiers_follow_the_request() -> None:
    plain = ChatRequest.from_text("q")
    json_request = plain.model_copy(update={"response_format": {"type": "json_object"}})
    text = Completion("hi", "m")
    called = _calling(_call("get_time", {}))

    def names(verifiers: tuple[Verifier, ...]) -> list[str]:
        return [v.name for v in verifiers]

    assert names(implicit_verifiers(plain, text, ())) == []
    assert names(implicit_verifiers(json_request, text, ())) == ["response_format"]
    assert names(implicit_verifiers(_request(), text, ())) == ["tool_calls"]
    assert names(implicit_verifiers(plain, called, ())) == ["tool_calls"]
    assert names(implicit_verifiers(_request(), text, (), tools=False)) == []
    assert names(implicit_verifiers(_request(), text, (ToolCallVerifier(name="mine"),))) == []


async def test_a_bad_tool_call_escalates_and_the_ledger_says_why(tmp_path: Path) -> None:
    bad = _calling(_call("get_weather", {"town": "Paris"}))
    good = _calling(_call("get_weather", {"city": "Paris"}))
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(
        tiers=[FakeWorker([bad], name="local:w"), FakeWorker([good], name="frontier:f")],
        verifiers=[ToolCallVerifier()],
        ledger=ledger,
    )
    result = await router.route(_request())
    rows = ledger.rows()
    ledger.close()
    assert result.tier == "frontier:f"
    assert result.completion.tool_calls == good.tool_calls
    assert rows[0].reason == (
        "escalate: tool_calls failed (get_weather (call 0): missing required argument 'city'; "
        "get_weather (call 0): unexpected argument 'town' "
        "(it takes: city, days, unit, coords, extra))"
    )


# --- YAML --------------------------------------------------------------------------------------


def needs_a_tool(request: ChatRequest) -> bool:
    """A relevance check for the YAML test: every request here needs a call."""
    return True


@pytest.mark.parametrize(
    ("raw", "cls", "name"),
    [
        ({"kind": "tool_calls"}, ToolCallVerifier, "tool_calls"),
        ("well_formed", WellFormedVerifier, "well_formed"),
        ({"kind": "well_formed", "require_usage": False, "name": "wf"}, WellFormedVerifier, "wf"),
        ({"kind": "response_format"}, ResponseFormatVerifier, "response_format"),
    ],
)
def test_yaml_kinds_build_the_verifiers(raw: object, cls: type, name: str) -> None:
    verifier = build_verifier(TypeAdapter(VerifierSpec).validate_python(raw), Path())
    assert (type(verifier), verifier.name) == (cls, name)


async def test_yaml_relevance_names_a_function() -> None:
    spec = TypeAdapter(VerifierSpec).validate_python(
        {"kind": "tool_calls", "relevance": f"{__name__}:needs_a_tool"}
    )
    verifier = build_verifier(spec, Path())
    verdict = await verifier.verify(_request(), Completion("sunny", "m"))
    assert verdict.reason.startswith("the request needs a tool call")
    bad = TypeAdapter(VerifierSpec).validate_python({"kind": "tool_calls", "relevance": "nope:x"})
    with pytest.raises(ConfigError, match="cannot import module 'nope'"):
        build_verifier(bad, Path())


def test_well_formed_keeps_require_usage_strict_by_default() -> None:
    verifier = build_verifier(TypeAdapter(VerifierSpec).validate_python("well_formed"), Path())
    assert isinstance(verifier, WellFormedVerifier)
    assert verifier.require_usage is True


@pytest.mark.parametrize("module", [tool_calls, tool_schema, response_format, implicit])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
