"""A tool's parameter schema, as real tool definitions write it, turned into JSON Schema.

Tool schemas in the wild use type names JSON Schema does not have: Python's (``dict``,
``float``, ``tuple``, ``list``, ``str``, ``int``, ``bool``), ``any``, and capitalised ones
(``String``, ``Integer``). The Berkeley Function Calling Leaderboard's 2,000+ functions are
written this way. :func:`to_json_schema` maps them onto JSON Schema's names (an unknown name
and ``any`` constrain nothing), and closes every object that lists its ``properties``
(``additionalProperties: false`` unless the schema says otherwise), so an argument the function
does not declare is reported instead of ignored. Two more readings of how such schemas are
written: an ``enum`` of scalars on an array constrains its items (a multiple choice), and a
parameter whose ``default`` is null may be sent as null. A function without ``parameters``
takes none (OpenAI's reading).

Example:
    >>> to_json_schema({"type": "dict", "properties": {"x": {"type": "float"}}})
    {'type': 'object', 'properties': {'x': {'type': 'number'}}, 'additionalProperties': False}
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

JsonSchema = dict[str, Any]  # Any: a JSON Schema is free-form JSON

#: Type names found in tool schemas -> JSON Schema's; None: no constraint.
TYPE_NAMES: dict[str, str | None] = {
    "object": "object",
    "dict": "object",
    "map": "object",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "string": "string",
    "str": "string",
    "char": "string",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "null": "null",
    "none": "null",
    "any": None,
}

_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_VALUES = frozenset(
    {
        "items",
        "additionalProperties",
        "additionalItems",
        "not",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
_NO_PARAMETERS: JsonSchema = {"type": "object", "properties": {}, "additionalProperties": False}


def to_json_schema(parameters: JsonSchema | None) -> JsonSchema:
    """``parameters`` of a tool as JSON Schema (see the module doc); a new dict.

    Example:
        >>> to_json_schema({"type": "array", "items": {"type": "String"}})
        {'type': 'array', 'items': {'type': 'string'}}
        >>> to_json_schema(None)["additionalProperties"]
        False
    """
    if parameters is None:
        return dict(_NO_PARAMETERS)
    result = _normalise(parameters)
    return result if isinstance(result, dict) else dict(_NO_PARAMETERS)


def _normalise(schema: Any) -> Any:  # Any: a (sub)schema, or a boolean schema
    if not isinstance(schema, dict):
        return schema
    out: JsonSchema = {}
    for key, value in schema.items():
        if key == "type":
            mapped = _type(value)
            if mapped is not None:
                out["type"] = mapped
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _normalise(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_normalise(sub) for sub in value]
        elif key == "items" and isinstance(value, list):  # the older tuple form
            out["prefixItems"] = [_normalise(sub) for sub in value]
        elif key in _SCHEMA_VALUES:
            out[key] = (
                [_normalise(sub) for sub in value] if isinstance(value, list) else _normalise(value)
            )
        else:
            out[key] = value
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    _enum_of_items(out)
    if "default" in out and out["default"] is None:
        _allow_null(out)
    return out


def _enum_of_items(schema: JsonSchema) -> None:
    """An ``enum`` of scalars on an array lists what its items may be (how tool schemas write
    a multiple choice): moved onto ``items``."""
    enum = schema.get("enum")
    if schema.get("type") != "array" or not isinstance(enum, list):
        return
    if any(isinstance(value, list | dict) for value in enum):
        return  # an enum of whole arrays: as written
    items = schema.get("items")
    items = dict(items) if isinstance(items, dict) else {}
    if "enum" not in items:
        items["enum"] = enum
        schema["items"] = items
        del schema["enum"]


def _allow_null(schema: JsonSchema) -> None:
    """A parameter whose declared default is null may be sent as null ("use the default")."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    enum = schema.get("enum")
    if isinstance(enum, list) and None not in enum:
        schema["enum"] = [*enum, None]


def _type(value: Any) -> str | list[str] | None:  # Any: a "type" as written
    """The JSON Schema type for a written type name (or list of names); None: unconstrained."""
    names = value if isinstance(value, list) else [value]
    mapped: list[str] = []
    for name in names:
        if not isinstance(name, str):
            return None
        json_name = TYPE_NAMES.get(name.strip().lower())
        if json_name is None:  # "any", or a name nobody defined: no constraint
            return None
        if json_name not in mapped:
            mapped.append(json_name)
    if not mapped:
        return None
    return mapped[0] if len(mapped) == 1 else mapped


@functools.lru_cache(maxsize=512)
def validator_for(schema_json: str) -> Validator:
    """A Draft 2020-12 validator for a schema given as JSON text (cached by that text).

    Raises ``jsonschema.SchemaError`` when the schema itself is invalid.
    """
    import jsonschema  # imported here: slow to import; only schema users pay

    schema = json.loads(schema_json)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator: Validator = jsonschema.Draft202012Validator(schema)
    return validator
