"""A tool built from an explicit JSON Schema and a callable (a catalogue's schema, a bound
method of an environment): offered as JSON Schema, its arguments validated with jsonschema the
way the router's tool-call check reads the schema."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from paxis_router.agent import Agent, FunctionTool, function_tool
from paxis_router.errors import ConfigError
from paxis_router.router import Router
from paxis_router.testing import FakeWorker
from paxis_router.types import ChatRequest, Completion, FunctionCall, ToolCall, Usage
from paxis_router.verifiers.tool_calls import ToolCallVerifier

# BFCL's way of writing a schema: Python type names, an enum
MOVE = {
    "type": "dict",
    "properties": {
        "source": {"type": "string", "description": "the file to move"},
        "destination": {"type": "string"},
        "mode": {"type": "string", "enum": ["keep", "replace"], "default": "keep"},
        "copies": {"type": "integer", "default": 1},
    },
    "required": ["source", "destination"],
}


class Files:
    """An environment whose methods take no annotations: only the schema says what they take."""

    def __init__(self) -> None:
        self.moved: list[tuple[str, str]] = []

    def mv(self, source, destination, mode="keep", copies=1):  # type: ignore[no-untyped-def]
        self.moved.append((source, destination))
        return {"result": f"{source} -> {destination}", "mode": mode, "copies": copies}


def completion(name: str, arguments: str, call_id: str = "c1") -> Completion:
    call = ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))
    return Completion("", "m", Usage(10, 5), finish_reason="tool_calls", tool_calls=(call,))


def test_the_schema_is_offered_as_json_schema_with_the_given_name_and_description() -> None:
    given = copy.deepcopy(MOVE)
    tool = FunctionTool(Files().mv, name="mv", description="Move a file.", parameters=MOVE)
    function = tool.definition().function
    assert (function.name, function.description) == ("mv", "Move a file.")
    assert function.parameters == {
        "type": "object",
        "properties": {
            "source": {"type": "string", "description": "the file to move"},
            "destination": {"type": "string"},
            "mode": {"type": "string", "enum": ["keep", "replace"], "default": "keep"},
            "copies": {"type": "integer", "default": 1},
        },
        "required": ["source", "destination"],
        "additionalProperties": False,
    }
    assert given == MOVE  # the caller's schema is left as given


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"source": "a.txt"}', "arguments: 'destination' is a required property"),
        ('{"source": "a.txt", "destination": 7}', "destination: 7 is not of type 'string'"),
        (
            '{"source": "a", "destination": "b", "force": true}',
            "Additional properties are not allowed ('force' was unexpected)",
        ),
        (
            '{"source": "a", "destination": "b", "mode": "KEEP"}',
            "mode: 'KEEP' is not one of ['keep', 'replace']",
        ),
        ('{"source": "a", "destination": "b", "copies": 1.5}', "copies: 1.5 is not of type"),
        ('{"source": "a"', "error: the arguments are not valid JSON"),
    ],
)
def test_arguments_that_do_not_fit_the_schema_come_back_as_the_tools_error(
    arguments: str, expected: str
) -> None:
    files = Files()
    tool = FunctionTool(files.mv, name="mv", parameters=MOVE)
    output = asyncio.run(tool.call(arguments))
    assert not output.ok
    assert expected in output.text
    assert files.moved == []  # the function never ran


def test_valid_arguments_reach_the_function_as_keywords() -> None:
    files = Files()
    tool = function_tool(files.mv, name="mv", parameters=MOVE)
    output = asyncio.run(tool.call('{"destination": "b/", "source": "a.txt", "copies": 2}'))
    assert output.ok
    assert json.loads(output.text) == {"result": "a.txt -> b/", "mode": "keep", "copies": 2}
    assert files.moved == [("a.txt", "b/")]


def test_a_schema_that_allows_non_objects_still_needs_an_object() -> None:
    tool = FunctionTool(lambda **kw: kw, name="f", parameters={"properties": {"x": {}}})
    output = asyncio.run(tool.call("[1, 2]"))
    assert (output.ok, output.text) == (
        False,
        "error: invalid arguments for f: arguments: expected a JSON object, got list",
    )


def test_an_invalid_schema_is_a_config_error_naming_the_tool() -> None:
    with pytest.raises(ConfigError, match="tool 'mv': parameters is not a valid JSON Schema"):
        FunctionTool(Files().mv, name="mv", parameters={"type": "object", "required": "source"})


@pytest.mark.parametrize(
    "arguments",
    [
        '{"source": "a", "destination": "b"}',
        '{"source": "a", "destination": "b", "mode": "replace", "copies": 3}',
        '{"source": "a"}',
        '{"source": "a", "destination": "b", "extra": 1}',
        '{"source": "a", "destination": "b", "mode": "move"}',
        '{"source": 1, "destination": "b"}',
        '{"source": "a", "destination": "b", "copies": "2"}',
    ],
)
def test_the_tool_accepts_exactly_the_calls_the_routers_tool_check_accepts(arguments: str) -> None:
    tool = FunctionTool(Files().mv, name="mv", parameters=MOVE)
    request = ChatRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "move it"}],
            "tools": [{"type": "function", "function": {"name": "mv", "parameters": MOVE}}],
        }
    )
    verdict = asyncio.run(ToolCallVerifier().verify(request, completion("mv", arguments)))
    assert asyncio.run(tool.call(arguments)).ok == verdict.passed


async def test_a_call_that_fails_the_schema_escalates_and_the_frontiers_call_runs() -> None:
    files = Files()
    worker = FakeWorker(
        [completion("mv", '{"source": "a.txt", "dest": "b/"}'), "Moved."], name="local:w"
    )
    frontier = FakeWorker(
        [completion("mv", '{"source": "a.txt", "destination": "b/"}')], name="frontier:f"
    )
    tool = FunctionTool(files.mv, name="mv", parameters=MOVE)
    result = await Agent(Router(tiers=[worker, frontier]), tools=[tool]).run("Move a.txt to b/")
    assert (result.answer, [s.escalated for s in result.steps]) == ("Moved.", [True, False])
    assert files.moved == [("a.txt", "b/")]
    # the worker was offered the schema as JSON Schema
    offered = worker.calls[0].tools
    assert offered is not None and offered[0].function.parameters is not None
    assert offered[0].function.parameters["type"] == "object"
