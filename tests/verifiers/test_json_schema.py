from __future__ import annotations

import pytest
from pydantic import BaseModel

from paxis_router.errors import ConfigError
from paxis_router.types import ChatRequest, Completion
from paxis_router.verifiers import JsonSchemaVerifier
from paxis_router.verifiers.json_schema import extract_json_text

REQUEST = ChatRequest.from_text("give me the invoice as JSON")

SCHEMA = {
    "type": "object",
    "required": ["total", "items"],
    "properties": {
        "total": {"type": "number"},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "number"}}},
        },
    },
}


class Item(BaseModel):
    price: float


class Invoice(BaseModel):
    total: float
    items: list[Item]


async def check(schema: object, text: str) -> tuple[bool, str]:
    verdict = await JsonSchemaVerifier(schema).verify(REQUEST, Completion(text, "m"))  # type: ignore[arg-type]
    assert verdict.verifier == "json_schema"
    return verdict.passed, verdict.reason


@pytest.mark.parametrize("schema", [SCHEMA, Invoice], ids=["dict", "pydantic"])
async def test_valid_json_passes(schema: object) -> None:
    assert await check(schema, '{"total": 3, "items": [{"price": 3}]}') == (
        True,
        "valid JSON matching the schema",
    )


@pytest.mark.parametrize("schema", [SCHEMA, Invoice], ids=["dict", "pydantic"])
async def test_fenced_block_is_accepted(schema: object) -> None:
    text = 'Here you go:\n```json\n{"total": 3, "items": []}\n```\nAnything else?'
    assert (await check(schema, text))[0]


@pytest.mark.parametrize("schema", [SCHEMA, Invoice], ids=["dict", "pydantic"])
async def test_not_json_fails(schema: object) -> None:
    passed, reason = await check(schema, "total is 3")
    assert not passed
    assert reason.startswith("answer is not valid JSON: Expecting value")


async def test_dict_schema_reason_names_the_path() -> None:
    passed, reason = await check(SCHEMA, '{"total": 3, "items": [{"price": "three"}]}')
    assert not passed
    assert reason == "$.items[0].price: 'three' is not of type 'number'"


async def test_pydantic_reason_names_the_path() -> None:
    passed, reason = await check(Invoice, '{"total": 3, "items": [{"price": "three"}]}')
    assert not passed
    assert reason.startswith("$.items[0].price: Input should be a valid number")


async def test_missing_property_and_error_cap() -> None:
    schema = {"type": "object", "required": ["a", "b", "c", "d", "e"]}
    passed, reason = await check(schema, "{}")
    assert not passed
    assert reason == (
        "$: 'a' is a required property; $: 'b' is a required property; "
        "$: 'c' is a required property; and 2 more"
    )


def test_invalid_schema_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"invalid JSON Schema at \$.type"):
        JsonSchemaVerifier({"type": "objekt"})


def test_schema_of_wrong_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="JSON Schema dict or a pydantic model class, got str"):
        JsonSchemaVerifier("object")  # type: ignore[arg-type]


def test_two_fenced_blocks_are_not_unwrapped() -> None:
    text = "```json\n{}\n```\n```json\n[]\n```"
    assert extract_json_text(text) == text
