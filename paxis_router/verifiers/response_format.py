"""ResponseFormatVerifier: an answer to a request that asked for JSON must be that JSON.

``response_format`` ``{"type": "json_object"}`` asks for a JSON object; ``{"type":
"json_schema", "json_schema": {"schema": {...}}}`` for JSON valid against that schema. OpenAI's
structured outputs guarantee it at the top of the ladder; a worker may not, so its answer is
checked here: parsed as it is (no fence stripping: a client that asked for JSON parses the raw
content), and validated against the schema. A request that asks for no JSON passes, as does an
answer that is a tool call instead of content.

Example:
    >>> import asyncio
    >>> from paxis_router.types import ChatRequest, Completion
    >>> request = ChatRequest.from_text("q").model_copy(
    ...     update={"response_format": {"type": "json_object"}})
    >>> asyncio.run(ResponseFormatVerifier().verify(request, Completion("[1]", "m"))).reason
    'the request asked for a JSON object (response_format json_object), got array'
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from paxis_router.types import Verdict
from paxis_router.verifiers.tool_schema import validator_for

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion

JSON_FORMATS = frozenset({"json_object", "json_schema"})
_MAX_ERRORS_SHOWN = 3


def asks_for_json(request: ChatRequest) -> bool:
    """True when the request's ``response_format`` asks for JSON (an object or a schema)."""
    fmt = request.response_format or {}
    return fmt.get("type") in JSON_FORMATS


def response_format_problem(request: ChatRequest, completion: Completion) -> str:
    """What is wrong with the answer for the JSON the request asked for ("" when nothing)."""
    fmt = request.response_format or {}
    kind = fmt.get("type")
    if kind not in JSON_FORMATS or (completion.tool_calls and not completion.content.strip()):
        return ""
    try:
        document = json.loads(completion.content)
    except ValueError as exc:
        return f"the answer is not the JSON the request asked for (response_format {kind}): {exc}"
    if kind == "json_object":
        if not isinstance(document, dict):
            return (
                "the request asked for a JSON object (response_format json_object), "
                f"got {_kind(document)}"
            )
        return ""
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return ""  # no schema given: any JSON will do
    import jsonschema  # imported here: slow to import; only schema users pay

    try:
        validator = validator_for(json.dumps(schema))
    except jsonschema.SchemaError as exc:
        return f"the request's response_format schema is not valid JSON Schema: {exc.message}"
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    if not errors:
        return ""
    name = spec.get("name") if isinstance(spec, dict) else None
    shown = "; ".join(f"{_path(e.absolute_path)}: {e.message}" for e in errors[:_MAX_ERRORS_SHOWN])
    if len(errors) > _MAX_ERRORS_SHOWN:
        shown += f"; and {len(errors) - _MAX_ERRORS_SHOWN} more"
    what = f"schema {name!r}" if name else "the schema"
    return f"the answer does not fit {what} of response_format: {shown}"


class ResponseFormatVerifier:
    """Passes when the answer is the JSON ``response_format`` asked for (see the module doc)."""

    def __init__(self, *, name: str = "response_format") -> None:
        self.name = name

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        problem = response_format_problem(request, completion)
        if problem:
            return Verdict(self.name, False, None, problem)
        if not asks_for_json(request):
            return Verdict(self.name, True, None, "no JSON asked for")
        return Verdict(self.name, True, None, "the JSON response_format asked for")


def _kind(value: Any) -> str:  # Any: decoded JSON
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return "null" if value is None else names.get(type(value), "object")


def _path(parts: Any) -> str:  # Any: a jsonschema path deque
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
