"""PaxisChatModel: a LangChain chat model over a Router."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from paxis_router import Router, SQLiteLedger
from paxis_router.errors import ConfigError
from paxis_router.integrations.langchain import PaxisChatModel
from paxis_router.testing import FakeVerifier, FakeWorker, FunctionWorker
from paxis_router.types import ChatRequest


def _model(tmp_path: Path) -> tuple[PaxisChatModel, SQLiteLedger]:
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(
        tiers=[FakeWorker(["no idea"], name="local:w"), FakeWorker(["42"], name="frontier:f")],
        verifiers=[FakeVerifier([False, True])],
        ledger=ledger,
    )
    return PaxisChatModel(router=router, team="claims", data_class="public"), ledger


def test_invoke_routes_and_reports_usage_and_route(tmp_path: Path) -> None:
    chat, ledger = _model(tmp_path)
    message = chat.invoke([SystemMessage("Be brief."), HumanMessage("What is 6*7?")])
    assert isinstance(message, AIMessage)
    assert message.content == "42"
    assert message.usage_metadata is not None
    # 2 + 3 prompt words on each of two attempts; 2 + 1 answer words.
    assert message.usage_metadata["input_tokens"] == 10
    assert message.usage_metadata["output_tokens"] == 3
    assert message.response_metadata["paxis_tier"] == "frontier:f"
    assert message.response_metadata["paxis_escalated"] is True
    rows = ledger.rows()
    assert {(r.team, r.data_class) for r in rows} == {("claims", "public")}
    assert {r.route_id for r in rows} == {message.response_metadata["paxis_route_id"]}


async def test_ainvoke_routes_too(tmp_path: Path) -> None:
    chat, ledger = _model(tmp_path)
    first = await chat.ainvoke("What is 6*7?")
    assert first.content == "42"
    assert ledger.count() == 2


def test_roles_and_text_parts_reach_the_worker() -> None:
    seen: list[ChatRequest] = []

    def echo(request: ChatRequest, skill: object) -> str:
        seen.append(request)
        return "ok"

    chat = PaxisChatModel(router=Router(tiers=[FunctionWorker(echo)]))
    chat.invoke(
        [
            SystemMessage("sys"),
            HumanMessage([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
            AIMessage("prev"),
            HumanMessage("next"),
        ]
    )
    assert [(m.role, m.content) for m in seen[0].messages] == [
        ("system", "sys"),
        ("user", "ab"),
        ("assistant", "prev"),
        ("user", "next"),
    ]


def test_an_unsupported_content_block_is_refused_by_name() -> None:
    chat = PaxisChatModel(router=Router(tiers=[FakeWorker(["x"])]))
    audio = HumanMessage([{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}])
    with pytest.raises(ConfigError, match="blocks of type 'audio' are not supported"):
        chat.invoke([audio])


def test_stream_yields_the_verified_answer(tmp_path: Path) -> None:
    chat, _ = _model(tmp_path)
    text = "".join(str(chunk.content) for chunk in chat.stream("What is 6*7?"))
    assert text == "42"
