"""Every text a request carries to a tier passes the gate (issue 14, item 3): message names,
content parts, tool-call arguments (JSON strings, numbers, keys, or malformed), tool results,
tools, ``response_format``, ``stop`` and ``user``, under ``pii: redact`` and ``pii: block``; and
the answer's content and tool-call arguments get the originals back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from paxis_router import ChatRequest, Completion, Router
from paxis_router.governance.gate import Action, Gate, GateDecision, Screened, parse_gate_policy
from paxis_router.skills.model import Skill
from paxis_router.types import FunctionCall, Message, ToolCall

EMAIL = "bob@example.com"
CARD = "4111111111111111"

POLICY = parse_gate_policy(
    {
        "version": "fields-1",
        "rules": [
            {"id": "redact", "effect": "allow", "data_classes": ["internal"], "pii": "redact"},
            {"id": "block", "effect": "allow", "data_classes": ["confidential"], "pii": "block"},
        ],
    }
)


def out(data_class: str = "internal") -> Action:
    return Action("call_tier", "frontier:f", destination="openai:us", data_class=data_class)


ASK = Message(role="user", content="go on")
TOOL = {"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}


def call(arguments: str) -> Message:
    return Message(
        role="assistant",
        tool_calls=[ToolCall(id="c1", function=FunctionCall(name="send", arguments=arguments))],
    )


def result(content: Any) -> Message:  # Any: a content string or parts, as the wire has them
    return Message(role="tool", tool_call_id="c1", content=content)


# Each case: the PII value and a request that carries it in one field only.
FIELDS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {  # Any: ChatRequest fields
    "message name": (EMAIL, lambda: {"messages": [Message(role="user", content="hi", name=EMAIL)]}),
    "content part": (EMAIL, lambda: {"messages": [Message(role="user", content=[
        {"type": "text", "text": f"mail {EMAIL}"},
        {"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}},
    ])]}),
    "tool-call argument": (EMAIL, lambda: {"messages": [
        call(json.dumps({"to": EMAIL})), result("sent"), ASK]}),
    "tool-call argument as a JSON number": (CARD, lambda: {"messages": [
        call(f'{{"card": {CARD}}}'), result("charged"), ASK]}),
    "tool-call argument key": (EMAIL, lambda: {"messages": [
        call(json.dumps({EMAIL: "primary"})), result("ok"), ASK]}),
    "malformed tool-call arguments": (EMAIL, lambda: {"messages": [
        call(f'{{"to": {EMAIL}'), result("error: bad JSON"), ASK]}),
    "tool result": (EMAIL, lambda: {"messages": [
        call('{"q": "owner"}'), result(f"owner: {EMAIL}"), ASK]}),
    "tool result parts": (EMAIL, lambda: {"messages": [
        call('{"q": "owner"}'), result([{"type": "text", "text": f"owner: {EMAIL}"}]), ASK]}),
    "tool description": (EMAIL, lambda: {"messages": [ASK], "tools": [{
        "type": "function", "function": {"name": "send", "description": f"mails {EMAIL}",
                                         "parameters": {"type": "object"}}}]}),
    "tool parameter enum": (EMAIL, lambda: {"messages": [ASK], "tools": [{
        "type": "function", "function": {"name": "send", "parameters": {
            "type": "object", "properties": {"to": {"type": "string", "enum": [EMAIL]}}}}}]}),
    "response_format schema": (EMAIL, lambda: {"messages": [ASK], "response_format": {
        "type": "json_schema", "json_schema": {"name": "reply", "schema": {
            "type": "object", "description": f"a reply to {EMAIL}"}}}}),
    "stop sequence": (EMAIL, lambda: {"messages": [ASK], "stop": [EMAIL]}),
    "user": (EMAIL, lambda: {"messages": [ASK], "user": EMAIL}),
}  # fmt: skip


def build(field: str, data_class: str) -> ChatRequest:
    _, fields = FIELDS[field]
    return ChatRequest(**fields(), metadata={"data_class": data_class})


def wire(request: ChatRequest) -> str:
    """Everything the request would send to a tier (its metadata stays home)."""
    return request.model_dump_json(exclude={"metadata", "request_id"}, exclude_none=True)


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_is_redacted(field: str) -> None:
    value, _ = FIELDS[field]
    request = build(field, "internal")
    assert value in wire(request) or value in "".join(request.texts())  # the case carries it
    screened = Gate(POLICY).screen(out(), request)
    assert screened.request is not None
    assert screened.decision.effect == "redact", screened.decision
    sent = wire(screened.request)
    assert value not in sent
    assert value not in "".join(screened.request.texts())
    placeholder = next(p for p, original in screened.placeholders.items() if value in original)
    assert placeholder in sent


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_is_blocked(field: str) -> None:
    screened = Gate(POLICY).screen(out("confidential"), build(field, "confidential"))
    assert screened.request is None
    decision: GateDecision = screened.decision
    assert (decision.effect, decision.rule_id) == ("deny", "block")
    assert decision.pii_kinds in (("email",), ("card",))


def test_a_request_without_pii_goes_out_unchanged() -> None:
    request = ChatRequest(
        messages=[call('{"to": "the team", "n": 3}'), result("sent"), ASK],
        tools=[TOOL],
        user="u-17",
        metadata={"data_class": "internal"},
    )
    screened = Gate(POLICY).screen(out(), request)
    assert (screened.decision.effect, screened.request) == ("allow", request)


# --- restoring the answer -----------------------------------------------------------------------


def screened_for(text: str, **fields: Any) -> Screened:  # Any: ChatRequest fields
    request = ChatRequest(
        messages=[Message(role="user", content=text)], metadata={"data_class": "internal"}, **fields
    )
    screened = Gate(POLICY).screen(out(), request)
    assert screened.placeholders, "nothing was redacted: the test would prove nothing"
    return screened


def test_restore_puts_originals_into_content_and_tool_call_arguments() -> None:
    screened = screened_for(f'mail {EMAIL} about "J" and card {CARD}')
    assert screened.placeholders == {"<EMAIL_1>": EMAIL, "<CARD_1>": CARD}
    answer = Completion(
        content="Mailing <EMAIL_1> now.",
        model="m",
        finish_reason="tool_calls",
        tool_calls=(
            ToolCall(id="a", function=FunctionCall(
                name="send", arguments='{"to": ["<EMAIL_1>"], "card": "<CARD_1>", "n": 1}')),
            ToolCall(id="b", function=FunctionCall(name="send", arguments='{"to": "<EMAIL_1>"')),
            ToolCall(id="c", function=FunctionCall(name="noop", arguments="{}")),
        ),
    )  # fmt: skip
    restored = screened.restore(answer)
    assert restored.content == f"Mailing {EMAIL} now."
    first, malformed, untouched = restored.tool_calls
    assert first.parsed_arguments() == {"to": [EMAIL], "card": CARD, "n": 1}
    assert malformed.arguments == f'{{"to": "{EMAIL}"'
    assert untouched == answer.tool_calls[2]
    assert (restored.model, restored.finish_reason) == ("m", "tool_calls")
    assert screened.restore("for <EMAIL_1>") == f"for {EMAIL}"


def test_restored_tool_arguments_stay_valid_json_whatever_the_value() -> None:
    class Quoted:
        name = "quoted"

        def detect(self, text: str) -> list[Any]:  # Any: PiiFinding, built by pii
            from paxis_router.governance.pii import PiiFinding

            value = 'Jo "JJ" \\ Smith'
            start = text.find(value)
            return [PiiFinding("person", start, start + len(value), value)] if start >= 0 else []

    request = ChatRequest.from_text('write to Jo "JJ" \\ Smith', data_class="internal")
    screened = Gate(POLICY, detector=Quoted()).screen(out(), request)
    answer = Completion(content="", model="m", tool_calls=(ToolCall(id="a", function=FunctionCall(
        name="send", arguments='{"to": "<PERSON_1>"}')),))  # fmt: skip
    (restored,) = screened.restore(answer).tool_calls
    assert restored.parsed_arguments() == {"to": 'Jo "JJ" \\ Smith'}


def test_no_restore_rule_keeps_the_placeholders_in_tool_calls() -> None:
    policy = parse_gate_policy(
        {
            "version": "v",
            "rules": [{"id": "r", "effect": "allow", "pii": "redact", "restore": False}],
        }
    )
    screened = Gate(policy).screen(out(), ChatRequest.from_text(f"to {EMAIL}"))
    answer = Completion(content="<EMAIL_1>", model="m", tool_calls=(ToolCall(
        id="a", function=FunctionCall(name="send", arguments='{"to": "<EMAIL_1>"}')),))  # fmt: skip
    assert screened.restore(answer) == answer


class ToolCaller:
    """A frontier stand-in that answers with a tool call addressed to the placeholder it saw."""

    name = "frontier:tools"
    model = "gpt-4o"
    destination = "openai:us"

    def __init__(self) -> None:
        self.sent: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        self.sent.append(request)
        to = request.query.rsplit(" ", 1)[-1]
        arguments = json.dumps({"to": to})
        calls = (ToolCall(id="a", function=FunctionCall(name="send", arguments=arguments)),)
        return Completion(
            content="", model=self.model, finish_reason="tool_calls", tool_calls=calls
        )


async def test_the_router_restores_tool_call_arguments() -> None:
    worker = ToolCaller()
    router = Router(tiers=[worker], gate=Gate(POLICY))
    send = {"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}
    request = ChatRequest(
        messages=[{"role": "user", "content": f"mail {EMAIL}"}],
        metadata={"data_class": "internal"},
        tools=[send],
    )
    routed = await router.route(request)
    assert worker.sent[0].query == "mail <EMAIL_1>"
    assert routed.completion.tool_calls[0].parsed_arguments() == {"to": EMAIL}
