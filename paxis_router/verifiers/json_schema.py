"""JsonSchemaVerifier: the answer must be JSON that fits a schema or a pydantic model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from paxis_router.errors import ConfigError
from paxis_router.types import Verdict

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from paxis_router.types import ChatRequest, Completion

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)
_MAX_ERRORS_SHOWN = 3


class JsonSchemaVerifier:
    """Passes when the answer parses as JSON and validates against ``schema``.

    ``schema`` is a JSON Schema (a dict, Draft 2020-12 unless it names another ``$schema``) or a
    pydantic model class (validated with ``model_validate_json``). The answer may be bare JSON
    or a single fenced block (```json ... ```). The reason names the failing path
    (``$.items[0].price``). An invalid schema raises ConfigError at construction.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> v = JsonSchemaVerifier({"type": "object", "required": ["total"]})
        >>> verdict = asyncio.run(v.verify(ChatRequest.from_text("sum"), Completion("{}", "m")))
        >>> verdict.passed, verdict.reason
        (False, "$: 'total' is a required property")
    """

    def __init__(self, schema: Mapping[str, Any] | type[BaseModel], *, name: str = "json_schema"):
        # Any: a JSON Schema is free-form JSON (vendor boundary with jsonschema)
        self.name = name
        self._model: type[BaseModel] | None = None
        self._validator: Validator | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._model = schema
        elif isinstance(schema, Mapping):
            self._validator = _validator_for(dict(schema))
        else:
            raise ConfigError(
                f"JsonSchemaVerifier takes a JSON Schema dict or a pydantic model class, "
                f"got {type(schema).__name__}"
            )

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        text = extract_json_text(completion.content)
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            return Verdict(self.name, False, None, f"answer is not valid JSON: {exc}")
        if self._model is not None:
            try:
                self._model.model_validate_json(text)
            except ValidationError as exc:
                problems = [
                    f"{_path(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
                ]
                return self._fail(problems)
        else:
            assert self._validator is not None
            errors = sorted(self._validator.iter_errors(document), key=lambda e: list(e.path))
            if errors:
                return self._fail([f"{_path(e.absolute_path)}: {e.message}" for e in errors])
        return Verdict(self.name, True, None, "valid JSON matching the schema")

    def _fail(self, problems: list[str]) -> Verdict:
        shown = "; ".join(problems[:_MAX_ERRORS_SHOWN])
        more = len(problems) - _MAX_ERRORS_SHOWN
        if more > 0:
            shown += f"; and {more} more"
        return Verdict(self.name, False, None, shown)


def extract_json_text(content: str) -> str:
    """The JSON text of an answer: the body of its single fenced block, else the stripped
    answer.

    Example:
        >>> extract_json_text('Here it is:\\n```json\\n{"a": 1}\\n```')
        '{"a": 1}'
    """
    blocks = _FENCE.findall(content)
    if len(blocks) == 1:
        return str(blocks[0]).strip()
    return content.strip()


def _validator_for(schema: dict[str, Any]) -> Validator:  # Any: free-form JSON Schema
    import jsonschema  # imported here: jsonschema is slow to import and only schema users pay
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _path(exc.absolute_path)
        raise ConfigError(f"invalid JSON Schema at {where}: {exc.message}") from exc
    return cls(schema)


def _path(parts: Iterable[str | int]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
