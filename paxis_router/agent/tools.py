"""Tools an agent can call: Python functions, with their JSON schema derived from the signature.

``function_tool`` turns a typed function into a ``FunctionTool`` the way pydantic-ai and the
OpenAI Agents SDK do: parameters and their types from the signature (validated by pydantic when
the model calls), the description from the docstring's first paragraph, each parameter's
description from its ``Args:`` entry. A call the model gets wrong (unknown tool, bad JSON,
arguments that do not validate) and a tool that raises come back to the model as the tool's
output (``ok=False``), so it can correct itself; nothing is raised into the loop.

A tool whose schema is given rather than derived (a catalogue such as BFCL's, an MCP server's,
a bound method of an environment) takes ``parameters=``: that JSON Schema is offered and the
arguments are validated against it with jsonschema instead of the signature (tool-schema type
names such as ``dict``/``float`` mapped, objects closed, exactly as the ``ToolCallVerifier``
reads it: see :mod:`paxis_router.verifiers.tool_schema`), so a call the router's tool-call check
accepts is a call the tool accepts.

Example:
    >>> import asyncio
    >>> @function_tool
    ... def add(a: int, b: int = 0) -> int:
    ...     '''Add two numbers.
    ...
    ...     Args:
    ...         a: the first number.
    ...         b: the second.
    ...     '''
    ...     return a + b
    >>> add.definition().function.parameters["required"]
    ['a']
    >>> asyncio.run(add.call('{"a": 2, "b": 40}'))
    ToolOutput(text='42', ok=True)
    >>> asyncio.run(add.call('{"a": "two"}')).ok
    False
    >>> def cd(folder):  # no annotations: the schema says what it takes
    ...     return {"current_working_directory": folder}
    >>> tool = FunctionTool(cd, parameters={"type": "dict", "properties": {
    ...     "folder": {"type": "string"}}, "required": ["folder"]})
    >>> asyncio.run(tool.call('{"folder": "docs"}'))
    ToolOutput(text='{"current_working_directory": "docs"}', ok=True)
    >>> asyncio.run(tool.call('{"folder": 3}')).text
    "error: invalid arguments for cd: folder: 3 is not of type 'string'"
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, get_type_hints, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from paxis_router.errors import ConfigError
from paxis_router.types import FunctionDefinition, Tool
from paxis_router.verifiers.tool_schema import to_json_schema, validator_for

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from jsonschema.protocols import Validator

_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a tool call gave back to the model: its text, and whether it succeeded."""

    text: str
    ok: bool = True


@runtime_checkable
class AgentTool(Protocol):
    """A tool the agent offers the model: its definition, and how to run one call of it."""

    name: str

    def definition(self) -> Tool: ...

    async def call(self, arguments: str) -> ToolOutput: ...


class FunctionTool:
    """A Python function offered to the model as a tool (see ``function_tool``).

    Args:
        fn: the function, sync (run in a worker thread) or async.
        name: the tool's name (default: the function's).
        description: what it does (default: the docstring's first paragraph).
        parameters: the arguments' JSON Schema (tool-schema type names allowed); given, it is
            offered and validated with jsonschema, and the function gets the arguments as
            keywords; default: derived from the signature and validated by pydantic.

    Raises:
        ConfigError: ``parameters`` is not a valid JSON Schema.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,  # Any: a JSON Schema
    ) -> None:
        self.fn = fn
        self.name = _NAME.sub("_", name or fn.__name__)[:64]
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else _summary(doc)
        self._arguments: type[BaseModel] | None = None
        self._validator: Validator | None = None
        if parameters is None:
            self._arguments = _arguments_model(fn, _arg_docs(doc))
            self.parameters = _clean_schema(self._arguments.model_json_schema())
        else:
            from jsonschema.exceptions import SchemaError  # jsonschema: slow to import

            self.parameters = to_json_schema(dict(parameters))
            try:
                self._validator = validator_for(json.dumps(self.parameters))
            except SchemaError as exc:
                raise ConfigError(
                    f"tool {self.name!r}: parameters is not a valid JSON Schema: {exc}"
                ) from exc

    def definition(self) -> Tool:
        """The tool as offered in a chat request."""
        return Tool(
            function=FunctionDefinition(
                name=self.name, description=self.description or None, parameters=self.parameters
            )
        )

    async def call(self, arguments: str) -> ToolOutput:
        """Validate ``arguments`` (JSON text) and run the function; errors become the output."""
        try:
            raw = json.loads(arguments or "{}")
        except ValueError as exc:
            return ToolOutput(f"error: the arguments are not valid JSON ({exc})", ok=False)
        checked = self._check(raw)
        if isinstance(checked, str):
            return ToolOutput(f"error: invalid arguments for {self.name}: {checked}", ok=False)
        kwargs = checked
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(**kwargs)
            else:
                result = await asyncio.to_thread(self.fn, **kwargs)
        except Exception as exc:  # the tool's own code: its failure is the model's information
            return ToolOutput(f"error: {self.name} raised {type(exc).__name__}: {exc}", ok=False)
        return ToolOutput(_as_text(result))

    def _check(self, raw: Any) -> dict[str, Any] | str:  # Any: decoded JSON
        """The keyword arguments, or what is wrong with them."""
        if self._validator is not None:
            errors = sorted(self._validator.iter_errors(raw), key=lambda e: list(e.path))
            if errors:
                return "; ".join(
                    f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}"
                    for e in errors
                )
            if not isinstance(raw, dict):
                return f"arguments: expected a JSON object, got {type(raw).__name__}"
            return raw
        assert self._arguments is not None
        try:
            parsed = self._arguments.model_validate(raw)
        except ValidationError as exc:
            return "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
        return {field: getattr(parsed, field) for field in type(parsed).model_fields}

    def __repr__(self) -> str:
        return f"FunctionTool({self.name!r})"


def function_tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,  # Any: a JSON Schema
) -> Any:  # Any: a FunctionTool, or a decorator making one (typed by its two uses below)
    """Make a typed function a tool: ``@function_tool`` or ``@function_tool(name=...)``
    (``parameters=``: an explicit JSON Schema, see ``FunctionTool``)."""
    if fn is None:
        return lambda f: FunctionTool(f, name=name, description=description, parameters=parameters)
    return FunctionTool(fn, name=name, description=description, parameters=parameters)


def as_tool(value: AgentTool | Callable[..., Any]) -> AgentTool:
    """A tool as given, or a plain function wrapped as a ``FunctionTool``."""
    if isinstance(value, AgentTool):
        return value
    return FunctionTool(value)


# --- schema from a signature ---------------------------------------------------------------------


def _arguments_model(fn: Callable[..., Any], docs: dict[str, str]) -> type[BaseModel]:
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}  # Any: pydantic field definitions
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, Field(default, description=docs.get(param.name)))
    config = ConfigDict(extra="forbid")
    return create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:  # Any: JSON schema
    """The model-facing schema: no pydantic titles, ``additionalProperties: false``."""

    def strip(node: Any) -> Any:  # Any: JSON
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    cleaned: dict[str, Any] = strip(schema)
    cleaned.setdefault("properties", {})
    cleaned["additionalProperties"] = False
    return cleaned


def _summary(doc: str) -> str:
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _arg_docs(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Args:`` section (continuation lines joined)."""
    match = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.M)
    if match is None:
        return {}
    lines = match.group(1).splitlines()
    base = len(lines[0]) - len(lines[0].lstrip())
    found: dict[str, str] = {}
    current = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        entry = re.match(r"\s*(\w+)(?:\s*\(.*?\))?:\s*(.*)", line)
        if indent <= base and entry:
            current = entry.group(1)
            found[current] = entry.group(2).strip()
        elif current is not None and line.strip():
            found[current] = f"{found[current]} {line.strip()}"
    return found


def _as_text(result: object) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, ensure_ascii=False, default=str)
