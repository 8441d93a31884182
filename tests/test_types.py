"""Request and message values: OpenAI shapes, validation, every text a request carries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from paxis_router.types import (
    MAX_TOKENS_LIMIT,
    ChatRequest,
    Completion,
    ImagePart,
    Message,
    ToolCall,
)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city; ask Ann Lee (ann@corp.example) for access",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "the city", "pattern": "^[A-Z].*"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}


def _history() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "be brief", "name": "ops bob@corp.example"},
        {"role": "user", "content": [{"type": "text", "text": "weather for carol@corp.example"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12C, owner dave@corp.example"},
    ]


def test_a_tool_history_round_trips_to_the_wire_shape_unchanged() -> None:
    request = ChatRequest(messages=_history(), tools=[WEATHER_TOOL], tool_choice="auto")
    wire = [m.wire() for m in request.messages]
    expected = _history()
    expected[2] = {k: v for k, v in expected[2].items() if v is not None}
    assert wire == expected
    assert request.tools is not None
    assert request.tools[0].wire() == WEATHER_TOOL
    assert request.tool_names == ("get_weather",)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"role": "user", "content": "x", "tool_calls": []}, "only assistant messages carry"),
        ({"role": "tool", "content": "x"}, "needs the tool_call_id"),
        ({"role": "user", "content": "x", "tool_call_id": "c"}, "only tool messages carry"),
        ({"role": "user"}, "content is required"),
        ({"role": "user", "content": [{"type": "input_audio", "x": 1}]}, "input_audio"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(
    message: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        Message.model_validate(message)


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"max_tokens": MAX_TOKENS_LIMIT + 1}, "max_tokens"),
        ({"top_p": 1.5}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        (
            {
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "nope",
        ),
        ({"tool_choice": "required"}, "needs tools"),
        ({"tools": [WEATHER_TOOL, WEATHER_TOOL]}, "unique"),
    ],
)
def test_parameters_that_cannot_be_honoured_are_refused(update: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ChatRequest(messages=[{"role": "user", "content": "hi"}], **update)


def test_map_texts_reaches_every_text_a_request_carries() -> None:
    request = ChatRequest(
        messages=_history(),
        tools=[WEATHER_TOOL],
        user="erin@corp.example",
        stop=["frank@corp.example"],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {"type": "object", "description": "for gus@corp.example"},
            },
        },
    )
    seen = " ".join(request.texts())
    for who in ("ann", "bob", "carol", "dave", "erin", "frank", "gus"):
        assert f"{who}@corp.example" in seen
    assert "Paris" in seen

    masked = request.map_texts(lambda s: s.replace("@corp.example", "@masked"))
    assert "@corp.example" not in json.dumps(masked.model_dump(mode="json"))
    # structure is never rewritten: names, types, patterns, the schema's own keys
    assert masked.tools is not None
    function = masked.tools[0].function
    assert function.name == "get_weather"
    assert function.parameters is not None
    assert function.parameters["properties"]["city"]["pattern"] == "^[A-Z].*"
    assert masked.response_format is not None
    assert masked.response_format["json_schema"]["name"] == "answer"
    assert masked.messages[0].name == "ops bob@masked"


def test_texts_are_exactly_what_map_texts_visits_in_its_order() -> None:
    """texts() reads without copying; the gate replaces texts one for one in this order."""
    request = ChatRequest(
        messages=_history(),
        tools=[WEATHER_TOOL],
        user="erin@corp.example",
        stop=["frank@corp.example", "halt"],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}}},
    )
    visited: list[str] = []

    def visit(text: str) -> str:
        visited.append(text)
        return text

    request.map_texts(visit)
    assert request.texts() == tuple(visited)
    assert request.texts() == tuple(visited)  # the tool's cached texts, read again
    for message in request.messages:
        seen: list[str] = []
        message.map_texts(lambda t, seen=seen: seen.append(t) or t)  # type: ignore[misc]
        assert list(message.texts()) == seen


def test_a_tool_redacted_by_map_texts_shows_its_new_texts() -> None:
    request = ChatRequest(messages=_history(), tools=[WEATHER_TOOL])
    assert any("ann@corp.example" in t for t in request.texts())
    masked = request.map_texts(lambda s: s.replace("ann@corp.example", "<EMAIL_1>"))
    assert any("<EMAIL_1>" in t for t in masked.texts())  # not the first object's cached texts
    assert not any("ann@corp.example" in t for t in masked.texts())


def test_tool_arguments_keep_their_bytes_when_nothing_changes_and_stay_json_when_redacted() -> None:
    request = ChatRequest(messages=_history())
    same = request.map_texts(lambda s: s)
    assert same.messages[2].tool_calls == request.messages[2].tool_calls
    changed = request.map_texts(lambda s: "<CITY_1>" if s == "Paris" else s)
    calls = changed.messages[2].tool_calls
    assert calls is not None
    assert calls[0].parsed_arguments() == {"city": "<CITY_1>"}


def test_malformed_tool_arguments_still_pass_through_the_text_function() -> None:
    call = ToolCall.model_validate(
        {"id": "c", "function": {"name": "f", "arguments": '{"to": "h@corp.example"'}}
    )
    message = Message(role="assistant", content=None, tool_calls=(call,))
    assert list(message.texts()) == ['{"to": "h@corp.example"']
    with pytest.raises(ValueError, match="Expecting"):
        call.parsed_arguments()


def test_images_are_kept_as_parts_and_text_is_joined() -> None:
    message = Message.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this?"},
            ],
        }
    )
    assert message.text == "what is this?"
    assert message.has_images
    assert isinstance(message.content, tuple)
    assert isinstance(message.content[1], ImagePart)
    request = ChatRequest(messages=[message])
    assert request.has_images
    assert request.query == "what is this?"


def test_with_system_merges_into_a_system_message_with_parts() -> None:
    request = ChatRequest(
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "house rules"}]},
            {"role": "user", "content": "hi"},
        ]
    )
    merged = request.with_system("skill text")
    assert merged.messages[0].text == "skill text\n\nhouse rules"
    assert len(merged.messages) == 2


def test_a_completion_carries_tool_calls() -> None:
    call = ToolCall.model_validate({"id": "c", "function": {"name": "f", "arguments": "{}"}})
    completion = Completion("", "m", finish_reason="tool_calls", tool_calls=(call,))
    assert completion.tool_calls[0].name == "f"
